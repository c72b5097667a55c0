/* fuzz_proxy: the PROXY protocol header (src/http/proxy.c) from any bytes. What it takes is
 * within the input and DT_PROXY_MAX; a header that parses parses the same whatever follows
 * it, and none of its prefixes is taken; an address it gives is IPv4 or IPv6. */
#include "http/http.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct dt_proxy_info pi;
    int n = dt_proxy_parse(s, size, &pi);
    if (n == -1 || n == -2)
        return 0;
    if (n <= 0 || (size_t)n > size || n > DT_PROXY_MAX)
        abort();
    if (pi.version != 1 && pi.version != 2)
        abort();
    if (!pi.local && ((pi.src.ss_family != AF_INET && pi.src.ss_family != AF_INET6) ||
                      pi.src.ss_family != pi.dst.ss_family))
        abort();
    /* the same header alone: the same length and addresses */
    struct dt_proxy_info again;
    if (dt_proxy_parse(s, (size_t)n, &again) != n || again.local != pi.local ||
        memcmp(&again.src, &pi.src, sizeof(pi.src)) != 0)
        abort();
    /* a prefix of it is never a header */
    for (size_t k = 0; k < (size_t)n; k += 1 + (size_t)n / 16) {
        struct dt_proxy_info part;
        if (dt_proxy_parse(s, k, &part) >= 0)
            abort();
    }
    return 0;
}
