/* status: the reason phrases of RFC 9110 section 15. */
#include "http/http.h"

struct dt_str dt_http_reason(int status)
{
    switch (status) {
    case 100:
        return DT_STR("Continue");
    case 101:
        return DT_STR("Switching Protocols");
    case 200:
        return DT_STR("OK");
    case 201:
        return DT_STR("Created");
    case 202:
        return DT_STR("Accepted");
    case 203:
        return DT_STR("Non-Authoritative Information");
    case 204:
        return DT_STR("No Content");
    case 205:
        return DT_STR("Reset Content");
    case 206:
        return DT_STR("Partial Content");
    case 300:
        return DT_STR("Multiple Choices");
    case 301:
        return DT_STR("Moved Permanently");
    case 302:
        return DT_STR("Found");
    case 303:
        return DT_STR("See Other");
    case 304:
        return DT_STR("Not Modified");
    case 305:
        return DT_STR("Use Proxy");
    case 307:
        return DT_STR("Temporary Redirect");
    case 308:
        return DT_STR("Permanent Redirect");
    case 400:
        return DT_STR("Bad Request");
    case 401:
        return DT_STR("Unauthorized");
    case 402:
        return DT_STR("Payment Required");
    case 403:
        return DT_STR("Forbidden");
    case 404:
        return DT_STR("Not Found");
    case 405:
        return DT_STR("Method Not Allowed");
    case 406:
        return DT_STR("Not Acceptable");
    case 407:
        return DT_STR("Proxy Authentication Required");
    case 408:
        return DT_STR("Request Timeout");
    case 409:
        return DT_STR("Conflict");
    case 410:
        return DT_STR("Gone");
    case 411:
        return DT_STR("Length Required");
    case 412:
        return DT_STR("Precondition Failed");
    case 413:
        return DT_STR("Content Too Large");
    case 414:
        return DT_STR("URI Too Long");
    case 415:
        return DT_STR("Unsupported Media Type");
    case 416:
        return DT_STR("Range Not Satisfiable");
    case 417:
        return DT_STR("Expectation Failed");
    case 421:
        return DT_STR("Misdirected Request");
    case 422:
        return DT_STR("Unprocessable Content");
    case 426:
        return DT_STR("Upgrade Required");
    case 428:
        return DT_STR("Precondition Required");
    case 429:
        return DT_STR("Too Many Requests");
    case 431:
        return DT_STR("Request Header Fields Too Large");
    case 500:
        return DT_STR("Internal Server Error");
    case 501:
        return DT_STR("Not Implemented");
    case 502:
        return DT_STR("Bad Gateway");
    case 503:
        return DT_STR("Service Unavailable");
    case 504:
        return DT_STR("Gateway Timeout");
    case 505:
        return DT_STR("HTTP Version Not Supported");
    }
    return DT_STR("");
}

bool dt_http_is_redirect(int64_t status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}
