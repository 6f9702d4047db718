#ifndef CGATEMESH_CURL_H
#define CGATEMESH_CURL_H

// Non-variadic wrappers around libcurl for Swift. Swift cannot call C variadic functions
// such as curl_easy_setopt, and it does not import macros built from other macros, so this
// shim gives each a typed, `ccurl_`-prefixed name.

#include <curl/curl.h>
#include <stddef.h>

typedef size_t (*ccurl_data_callback)(char *ptr, size_t size, size_t nmemb, void *userdata);
/// `CURLOPT_SEEKFUNCTION`'s callback: return 0 (`CURL_SEEKFUNC_OK`) or 2 (`CURL_SEEKFUNC_CANTSEEK`).
typedef int (*ccurl_seek_callback)(void *userdata, curl_off_t offset, int origin);

/// Initialises libcurl once for the process. Returns 0 on success.
int ccurl_global_init(void);

CURLcode ccurl_easy_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode ccurl_easy_setopt_offset(CURL *handle, CURLoption option, curl_off_t value);
CURLcode ccurl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode ccurl_easy_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode ccurl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode ccurl_easy_set_write_callback(CURL *handle, ccurl_data_callback callback, void *userdata);
CURLcode ccurl_easy_set_header_callback(CURL *handle, ccurl_data_callback callback, void *userdata);
CURLcode ccurl_easy_set_read_callback(CURL *handle, ccurl_data_callback callback, void *userdata);
/// Lets libcurl rewind the request body (to send it again on a reused connection that turned out
/// to be closed).
CURLcode ccurl_easy_set_seek_callback(CURL *handle, ccurl_seek_callback callback, void *userdata);
CURLcode ccurl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode ccurl_easy_getinfo_double(CURL *handle, CURLINFO info, double *value);
CURLMcode ccurl_multi_setopt_long(CURLM *handle, CURLMoption option, long value);

/// curl_easy_pause with CURLPAUSE_CONT (resume both directions).
CURLcode ccurl_easy_unpause(CURL *handle);

/// The `CURL_WRITEFUNC_PAUSE` / `CURL_READFUNC_PAUSE` / `CURL_READFUNC_ABORT` return values.
size_t ccurl_writefunc_pause(void);
size_t ccurl_readfunc_pause(void);
size_t ccurl_readfunc_abort(void);

/// The libcurl version string, e.g. "7.88.1".
const char *ccurl_version(void);
/// Non-zero when the linked libcurl supports HTTP/2.
int ccurl_has_http2(void);

#endif
