/* fuzz_hello: any bytes as the first bytes of a TLS connection (records, then the
 * ClientHello they carry) and as the body of a ClientHello must be told apart or read
 * within their bounds; what is read stays within the offers' arrays; the same bytes read
 * twice give the same offers. */
#include "tls/internal.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tls_hello a, b;
    bool ok = tls_hello_parse(data, size, &a);
    if (ok != tls_hello_parse(data, size, &b) || (ok && memcmp(&a, &b, sizeof(a)) != 0))
        abort();
    if (ok && (a.nsuites > sizeof(a.suites) / sizeof(a.suites[0]) ||
               a.nsigalgs > sizeof(a.sigalgs) / sizeof(a.sigalgs[0]) ||
               a.ngroups > sizeof(a.groups) / sizeof(a.groups[0]) ||
               memchr(a.host, '\0', sizeof(a.host)) == NULL))
        abort();
    for (size_t i = 0; ok && i < a.nsuites; i++)
        if (tls_suite_type(a.suites[i]) < 0)
            abort(); /* only our suites are kept */
    const unsigned char *body = NULL;
    unsigned char *copy = NULL;
    size_t blen = 0;
    enum tls_first what = tls_first_scan(data, size, &body, &blen, &copy);
    if (what == TLS_FIRST_HELLO) {
        if (!body || blen > TLS_HELLO_MAX)
            abort();
        if (!copy && (body < data || body + blen > data + size))
            abort(); /* in place: within the input */
        (void)tls_hello_parse(body, blen, &a);
    } else if (copy) {
        abort(); /* a copy only for a ClientHello */
    }
    free(copy);
    return 0;
}
