#include "CGateMeshCurl.h"

int ccurl_global_init(void) { return (int)curl_global_init(CURL_GLOBAL_ALL); }

CURLcode ccurl_easy_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
CURLcode ccurl_easy_setopt_offset(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
CURLcode ccurl_easy_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
CURLcode ccurl_easy_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
CURLcode ccurl_easy_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }

CURLcode ccurl_easy_set_write_callback(CURL *h, ccurl_data_callback cb, void *ud) {
    CURLcode rc = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cb);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(h, CURLOPT_WRITEDATA, ud);
}

CURLcode ccurl_easy_set_header_callback(CURL *h, ccurl_data_callback cb, void *ud) {
    CURLcode rc = curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, cb);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(h, CURLOPT_HEADERDATA, ud);
}

CURLcode ccurl_easy_set_read_callback(CURL *h, ccurl_data_callback cb, void *ud) {
    CURLcode rc = curl_easy_setopt(h, CURLOPT_READFUNCTION, cb);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(h, CURLOPT_READDATA, ud);
}

CURLcode ccurl_easy_set_seek_callback(CURL *h, ccurl_seek_callback cb, void *ud) {
    CURLcode rc = curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, cb);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(h, CURLOPT_SEEKDATA, ud);
}

CURLcode ccurl_easy_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
CURLcode ccurl_easy_getinfo_double(CURL *h, CURLINFO i, double *v) { return curl_easy_getinfo(h, i, v); }
CURLMcode ccurl_multi_setopt_long(CURLM *h, CURLMoption o, long v) { return curl_multi_setopt(h, o, v); }

CURLcode ccurl_easy_unpause(CURL *h) { return curl_easy_pause(h, CURLPAUSE_CONT); }

size_t ccurl_writefunc_pause(void) { return CURL_WRITEFUNC_PAUSE; }
size_t ccurl_readfunc_pause(void) { return CURL_READFUNC_PAUSE; }
size_t ccurl_readfunc_abort(void) { return CURL_READFUNC_ABORT; }

const char *ccurl_version(void) { return curl_version_info(CURLVERSION_NOW)->version; }
int ccurl_has_http2(void) { return (curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_HTTP2) != 0; }
