/* base: the small pieces every other module stands on: byte spans, error codes,
 * growable buffers, arenas, logging, HTML escaping, number and time parsing.
 * Nothing here knows about HTTP or rules. */
#ifndef DT_BASE_H
#define DT_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define DT_MUST_CHECK __attribute__((warn_unused_result))
#define DT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define DT_LIKELY(x) __builtin_expect(!!(x), 1)
#define DT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define DT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- errors ---------------------------------------------------------------------------- */

/* Negative error codes returned by functions that can fail; 0 is success. */
enum {
    DT_ENOMEM = -1,   /* out of memory */
    DT_EINVAL = -2,   /* bad argument or bad input */
    DT_EIO = -3,      /* an I/O call failed; errno says why */
    DT_ERANGE = -4,   /* a number or a size is out of range */
    DT_ENOENT = -5,   /* no such thing */
    DT_ESYNTAX = -6,  /* a rule file or a URL did not parse */
    DT_ELIMIT = -7,   /* a named limit was exceeded */
    DT_EREFUSED = -8, /* refused by policy */
    DT_EEXIST = -9,   /* already exists */
};

/* Returns a static English description of a DT_E* code (never NULL). Any thread. */
const char *dt_strerror(int code);

/* Prints "detour: out of memory" and aborts. The server's answer to allocation failure. */
__attribute__((noreturn)) void dt_oom(void);

/* malloc/realloc/calloc that abort through dt_oom() on failure (server side only). */
void *dt_xmalloc(size_t size);
void *dt_xcalloc(size_t n, size_t size);
void *dt_xrealloc(void *ptr, size_t size);
char *dt_xstrndup(const char *s, size_t len);

/* A diagnostic from a parser: where (byte offset into its input) and what went wrong. */
struct dt_diag {
    size_t offset;
    char msg[240];
};
void dt_diag_set(struct dt_diag *d, size_t offset, const char *fmt, ...) DT_PRINTF(3, 4);

/* ---- byte spans ------------------------------------------------------------------------ */

/* A span of bytes that something else owns; not NUL-terminated. */
struct dt_str {
    const char *ptr;
    size_t len;
};

#define DT_STR(lit) ((struct dt_str){(lit), sizeof(lit) - 1})
#define DT_STR_NULL ((struct dt_str){NULL, 0})

static inline struct dt_str dt_str_make(const char *ptr, size_t len)
{
    return (struct dt_str){ptr, len};
}

static inline bool dt_str_eq(struct dt_str a, struct dt_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* True when a equals the NUL-terminated b, ignoring ASCII case. */
bool dt_str_ieq(struct dt_str a, const char *b);
/* ASCII lower-casing in place. */
void dt_ascii_lower(char *s, size_t len);

static inline int dt_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* RFC 9110 5.6.2 tchar: the bytes of a token (method, header name, transfer coding). */
extern const uint8_t dt_tchar[256];

/* Parses a whole span as a decimal integer in [min, max]. Returns 0 or DT_EINVAL
 * (not a number) or DT_ERANGE (outside the range). */
DT_MUST_CHECK int dt_parse_int(struct dt_str s, int64_t min, int64_t max, int64_t *out);

/* Parses a size: a decimal number with an optional k/K or m/M or g/G suffix (binary:
 * 1k = 1024). Returns 0, DT_EINVAL or DT_ERANGE (beyond max). */
DT_MUST_CHECK int dt_parse_size(const char *s, uint64_t max, uint64_t *out);

/* Parses a duration: a number with an optional unit ms, s (default), m, h or d.
 * Stores milliseconds. Returns 0, DT_EINVAL or DT_ERANGE (beyond max_ms). */
DT_MUST_CHECK int dt_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out_ms);

/* Writes the decimal form of v into out (at least 20 bytes); returns its length. */
size_t dt_fmt_u64(char *out, uint64_t v);

/* ---- growable buffers ------------------------------------------------------------------ */

/* A growable byte buffer. Owns ptr (free with dt_buf_dispose). */
struct dt_buf {
    char *ptr;
    size_t len;
    size_t cap;
};

void dt_buf_init(struct dt_buf *b);
void dt_buf_dispose(struct dt_buf *b);
/* Ensures room for n more bytes; aborts on OOM (server) - see dt_buf_try_reserve. */
void dt_buf_reserve(struct dt_buf *b, size_t n);
DT_MUST_CHECK int dt_buf_try_reserve(struct dt_buf *b, size_t n);
void dt_buf_append(struct dt_buf *b, const void *p, size_t n);
void dt_buf_appendf(struct dt_buf *b, const char *fmt, ...) DT_PRINTF(2, 3);
static inline void dt_buf_append_str(struct dt_buf *b, struct dt_str s)
{
    dt_buf_append(b, s.ptr, s.len);
}
/* NUL-terminates without counting the NUL in len. */
void dt_buf_terminate(struct dt_buf *b);

/* ---- string maps ----------------------------------------------------------------------- */

/* FNV-1a of len bytes. */
uint64_t dt_hash_bytes(const void *p, size_t len);

/* A map from strings (copied) to the caller's pointers. Not shared between threads. */
struct dt_strmap {
    struct dt_strmap_entry {
        char *key;
        uint64_t hash;
        void *value;
    } * v;
    size_t cap, n;
};

void dt_strmap_init(struct dt_strmap *m);
/* The value slot of key: NULL when absent and !create; created holding NULL otherwise.
 * The slot is valid until the next call that may add or prune. Aborts on OOM. */
void **dt_strmap_get(struct dt_strmap *m, const char *key, bool create);
/* Removes the entries whose value drop says to (the value is the caller's to free there). */
void dt_strmap_prune(struct dt_strmap *m, bool (*drop)(void *ctx, void *value), void *ctx);
void dt_strmap_each(const struct dt_strmap *m, void (*fn)(void *ctx, const char *key, void *value),
                    void *ctx);
/* Frees the keys, and each value with free_value (may be NULL). */
void dt_strmap_dispose(struct dt_strmap *m, void (*free_value)(void *value));

/* ---- arenas ---------------------------------------------------------------------------- */

/* A bump allocator for data with one lifetime (a loaded rule set, a request). Blocks are
 * freed together by dt_arena_dispose. */
struct dt_arena {
    struct dt_arena_block *_head;
    size_t _block_size;
    size_t total; /* bytes handed out, for reports */
};

void dt_arena_init(struct dt_arena *a, size_t block_size);
void dt_arena_dispose(struct dt_arena *a);
/* Returns size bytes aligned to 8; aborts on OOM. Freed with the arena. */
void *dt_arena_alloc(struct dt_arena *a, size_t size);
/* Copies len bytes and a NUL into the arena. */
char *dt_arena_strndup(struct dt_arena *a, const char *s, size_t len);

/* ---- logging --------------------------------------------------------------------------- */

enum dt_log_level { DT_LOG_DEBUG, DT_LOG_INFO, DT_LOG_WARN, DT_LOG_ERROR };

/* One line on stderr: "2026-11-24T13:00:00Z detour[PID] LEVEL: message", written with a
 * single write() so lines from several threads never interleave. Any thread. */
void dt_log(enum dt_log_level level, const char *fmt, ...) DT_PRINTF(2, 3);
void dt_log_set_level(enum dt_log_level min);

/* ---- HTML ------------------------------------------------------------------------------ */

/* Bytes s takes once HTML-escaped (& < > " ' become entities). */
size_t dt_html_escaped_len(struct dt_str s);
/* Writes the escaped form of s to out (room for dt_html_escaped_len bytes); returns it. */
size_t dt_html_escape(char *out, struct dt_str s);

/* ---- time ------------------------------------------------------------------------------ */

/* Milliseconds of CLOCK_MONOTONIC (coarse: cheap, about 4 ms resolution). */
uint64_t dt_now_ms(void);
/* The wall clock, in seconds: the one read of it. Code that decides by the date (windows,
 * HSTS expiry, rule ages, promotions) never calls this: it takes now from its caller, and
 * only the outermost caller (a command, the server's threads) reads the clock here, so
 * tests pass a time of their own. Coarse: the time of the last tick, cheap on hot paths. */
time_t dt_wall_now(void);
/* Formats t as an IMF-fixdate (RFC 9110 5.6.7), "Sun, 06 Nov 1994 08:49:37 GMT": 29 bytes,
 * written without a NUL. */
void dt_http_date(char out[29], time_t t);
/* Parses an RFC 3339 date-time ("2026-12-01T06:00:00Z", offsets and fractions allowed) or a
 * plain date ("2026-12-01", midnight UTC). Returns 0 or DT_EINVAL. */
DT_MUST_CHECK int dt_parse_rfc3339(struct dt_str s, time_t *out);
/* Formats t as "2026-12-01T06:00:00Z" (20 bytes plus NUL). */
void dt_fmt_rfc3339(char out[21], time_t t);

#endif
