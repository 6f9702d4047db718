-- wrk script: a small non-streamed OpenAI chat completion, as most AI traffic is.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer sk-bench"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark in a few words"}],"max_tokens":16}'
