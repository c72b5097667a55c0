/* tls: the server's TLS, behind one interface (OpenSSL today; the library is this module's
 * choice alone): certificates and their names (SNI), one context per certificate group,
 * session tickets with keys shared by every worker and rotated, and non-blocking
 * connections on a socket.
 *
 * A certificate set is loaded once (at start, on SIGHUP) and immutable afterwards; it is
 * reference-counted, and every connection holds a reference, so a reload never pulls
 * certificates from under a handshake in flight. */
#ifndef DT_TLS_H
#define DT_TLS_H

#include "base/base.h"

#include <sys/types.h>
#include <time.h>

struct dt_tls_set;
struct dt_tls_conn;

/* Loads the certificates: every file of paths (a PEM file with the chain and its private
 * key, or the key in NAME.key beside NAME.pem), then every *.pem in each of the ndirs dirs
 * (NULL entries skipped). The first certificate answers clients that name no host or an
 * unknown one; a name two certificates cover is the first one's. alpn_h2: offer "h2"
 * before "http/1.1" by ALPN. Returns the set (one reference), or NULL with a message naming
 * the file in err. */
struct dt_tls_set *dt_tls_load(const char *const *paths, size_t npaths, const char *const *dirs,
                               size_t ndirs, bool alpn_h2, struct dt_buf *err);
void dt_tls_set_ref(struct dt_tls_set *s);
void dt_tls_set_unref(struct dt_tls_set *s);

/* The number of certificates in s. */
size_t dt_tls_set_count(const struct dt_tls_set *s);

/* True when a certificate of s names host (lower-case, no port, no final dot): exactly, or
 * by a wildcard for its first label. */
bool dt_tls_set_covers(const struct dt_tls_set *s, struct dt_str host);

/* Calls fn for every name of every certificate of s, with the end of its validity. */
void dt_tls_set_each_name(const struct dt_tls_set *s,
                          void (*fn)(void *ctx, const char *name, time_t not_after), void *ctx);

/* Session ticket keys: made at the first load, shared by every context and worker. A key
 * encrypts tickets for period seconds, then decrypts (and renews) for two more periods.
 * Rotates when now says the current one is older than period. Any thread. */
void dt_tls_rotate_tickets(time_t now, time_t period);

/* Has fn called (from a worker, during a handshake: it must be quick) with each server name
 * a client asks for that no certificate of the set covers (lower-case). NULL: nobody. Set
 * before the first connection. */
void dt_tls_on_unknown_name(void (*fn)(void *ctx, const char *host), void *ctx);

/* ---- TLS-ALPN-01 (RFC 8737) --------------------------------------------------------------- */

/* Serves the PEM certificate cert (with its key) to a handshake that offers only the ALPN
 * protocol "acme-tls/1" for name, negotiating it, until cleared. False if the certificate
 * does not load or the backend cannot (wolfSSL). Any thread. */
bool dt_tls_alpn_challenge_set(const char *name, const char *cert, const char *key);
void dt_tls_alpn_challenge_clear(const char *name);

/* ---- connections ------------------------------------------------------------------------ */

/* What a read or write of a connection did besides moving bytes. */
enum {
    DT_TLS_WANT_READ = -1,  /* wait until the socket is readable */
    DT_TLS_WANT_WRITE = -2, /* wait until the socket is writable */
    DT_TLS_ERROR = -3,      /* the connection failed: close it */
    DT_TLS_PLAIN_HTTP = -4, /* the client spoke plain HTTP to a TLS port */
};

/* Why a handshake failed, for the metrics. */
enum dt_tls_failure {
    DT_TLS_FAIL_PROTOCOL, /* no TLS version both sides speak */
    DT_TLS_FAIL_CIPHER,   /* no cipher suite, group or signature both sides speak */
    DT_TLS_FAIL_CLOSED,   /* the client went away during the handshake */
    DT_TLS_FAIL_TIMEOUT,  /* it did not finish in time */
    DT_TLS_FAIL_HTTP,     /* plain HTTP sent to a TLS port */
    DT_TLS_FAIL_OTHER,
    DT_TLS_FAIL_COUNT
};
extern const char *const dt_tls_failure_names[DT_TLS_FAIL_COUNT];

/* A server connection on the accepted socket fd, taking a reference on s. NULL if out of
 * memory. */
struct dt_tls_conn *dt_tls_accept(struct dt_tls_set *s, int fd);
/* c offers http/1.1 only by ALPN, whatever its set says (a listener whose handler speaks
 * no HTTP/2: the admin API's). Before the handshake. */
void dt_tls_no_h2(struct dt_tls_conn *c);
/* Frees c and its reference on its set (the socket is the caller's). */
void dt_tls_free(struct dt_tls_conn *c);

/* Reads decrypted bytes (the handshake first): > 0 bytes, 0 at the client's close, or one
 * of DT_TLS_WANT_READ, DT_TLS_WANT_WRITE, DT_TLS_ERROR, DT_TLS_PLAIN_HTTP. */
ssize_t dt_tls_read(struct dt_tls_conn *c, void *buf, size_t n);
/* Writes bytes: > 0 written (maybe fewer than n; the rest is retried with the same bytes,
 * which may have moved), or DT_TLS_WANT_READ, DT_TLS_WANT_WRITE, DT_TLS_ERROR. */
ssize_t dt_tls_write(struct dt_tls_conn *c, const void *buf, size_t n);
/* Sends close_notify (best effort, non-blocking). */
void dt_tls_close_notify(struct dt_tls_conn *c);
/* Says the connection ends after what is written next: the close_notify may go out with
 * the last of it, in the same packet (dt_tls_close_notify then sends nothing more). */
void dt_tls_closing(struct dt_tls_conn *c);

/* True once the handshake is done; then whether it resumed a session, and whether ALPN
 * chose h2. */
bool dt_tls_established(const struct dt_tls_conn *c);
bool dt_tls_resumed(const struct dt_tls_conn *c);
bool dt_tls_h2(const struct dt_tls_conn *c);
/* Why the handshake failed, after a DT_TLS_ERROR or 0 from dt_tls_read before it was done. */
enum dt_tls_failure dt_tls_failure(const struct dt_tls_conn *c);
/* The protocol version ("TLSv1.3"), for logs. */
const char *dt_tls_version(const struct dt_tls_conn *c);
/* Who answers the connection: "detour" (its own TLS 1.3, tls13.c) or the library
 * ("openssl", "wolfssl"); "" before the ClientHello has come. */
const char *dt_tls_engine(const struct dt_tls_conn *c);

#endif
