/* fuzz_hello: any bytes as the first bytes of a TLS connection (records, then the
 * ClientHello they carry) and as the body of a ClientHello must be told apart or read
 * within their bounds; what is read stays within the offers' arrays; the same bytes read
 * twice give the same offers; so for the TLS 1.3 offers tls13.c reads, whose pointers stay
 * within the bytes. */
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
    /* the TLS 1.3 offers: every pointer within the bytes, the same read twice */
    struct tls13_offer o1, o2;
    bool ok13 = tls13_offer_parse(data, size, &o1);
    if (ok13 != tls13_offer_parse(data, size, &o2) || memcmp(&o1, &o2, sizeof(o1)) != 0)
        abort();
    if (o1.sid && (o1.sid < data || o1.sid + o1.sidlen > data + size || (ok13 && o1.sidlen > 32)))
        abort();
    if (o1.x25519 && (o1.x25519 < data || o1.x25519 + 32 > data + size))
        abort();
    if (ok13 && o1.identities &&
        (o1.identities < data || o1.identities + o1.identities_len > data + size ||
         o1.binders < data || o1.binders + o1.binders_len > data + size ||
         o1.binders_at + 2 + o1.binders_len != size || !o1.psk_last))
        abort(); /* the binders end the ClientHello */
    if (o1.nsuites > 3 || memchr(o1.host, '\0', sizeof(o1.host)) == NULL)
        abort();
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
