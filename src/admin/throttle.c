/* throttle: failed admin tokens slowed down per client address (docs/admin.md,
 * Authentication). A pure policy: the caller says which address asks and when, and answers
 * 429 while the address is held back, so the admin thread never waits for anyone. */
#include "admin/internal.h"

#include <arpa/inet.h>
#include <stdlib.h>

/* The key of an address: IPv4 (an IPv4-mapped IPv6 address as IPv4), or the /64 of an IPv6
 * address (one host or network usually has a whole /64: counting its addresses apart would
 * give it 2^64 tries). 0 for what is no address here (a Unix socket's "unix", "", junk):
 * not throttled. */
static size_t key_of(const char *peer, unsigned char key[16])
{
    struct in6_addr a6;
    if (!peer || !peer[0])
        return 0;
    if (inet_pton(AF_INET, peer, key) == 1)
        return 4;
    if (inet_pton(AF_INET6, peer, &a6) != 1)
        return 0;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
        memcpy(key, a6.s6_addr + 12, 4);
        return 4;
    }
    memcpy(key, a6.s6_addr, 8);
    return 8;
}

/* The hold after the given number of failures in a row: none before the limit, then the
 * first hold doubling with each failure, up to the longest. */
static uint64_t hold_after(const struct dt_admin_throttle *t, uint32_t failures)
{
    if (failures < t->limit)
        return 0;
    uint32_t doublings = failures - t->limit;
    if (doublings >= 32)
        return DT_THROTTLE_MAX_HOLD_MS;
    uint64_t hold = (uint64_t)DT_THROTTLE_FIRST_HOLD_MS << doublings;
    return hold < DT_THROTTLE_MAX_HOLD_MS ? hold : DT_THROTTLE_MAX_HOLD_MS;
}

/* An address's failures are forgotten once it has been quiet long enough and is not held. */
static bool forgotten(const struct throttle_addr *e, uint64_t now_ms)
{
    return e->until_ms <= now_ms && now_ms - e->last_ms >= DT_THROTTLE_FORGET_MS;
}

static struct throttle_addr *find(struct dt_admin_throttle *t, const unsigned char *key, size_t len)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->addrs[i].len == len && !memcmp(t->addrs[i].key, key, len))
            return &t->addrs[i];
    return NULL;
}

/* The entry of a new address: a free place, else that of an address forgotten, else (the
 * table full of addresses failing now) that of the one quiet for longest. */
static struct throttle_addr *add(struct dt_admin_throttle *t, uint64_t now_ms)
{
    if (t->n == t->cap && t->cap < DT_THROTTLE_ADDRESSES) {
        t->cap = t->cap ? 2 * t->cap : 16;
        if (t->cap > DT_THROTTLE_ADDRESSES)
            t->cap = DT_THROTTLE_ADDRESSES;
        t->addrs = dt_xrealloc(t->addrs, t->cap * sizeof(*t->addrs));
    }
    if (t->n < t->cap)
        return &t->addrs[t->n++];
    struct throttle_addr *oldest = &t->addrs[0];
    for (size_t i = 0; i < t->n; i++) {
        if (forgotten(&t->addrs[i], now_ms))
            return &t->addrs[i];
        if (t->addrs[i].last_ms < oldest->last_ms)
            oldest = &t->addrs[i];
    }
    return oldest;
}

void dt_admin_throttle_init(struct dt_admin_throttle *t, unsigned limit)
{
    memset(t, 0, sizeof(*t));
    t->limit = limit;
}

void dt_admin_throttle_dispose(struct dt_admin_throttle *t)
{
    free(t->addrs);
    t->addrs = NULL;
    t->n = t->cap = 0;
}

uint64_t dt_admin_throttle_wait(struct dt_admin_throttle *t, const char *peer, uint64_t now_ms)
{
    unsigned char key[16];
    size_t len = t->limit ? key_of(peer, key) : 0;
    struct throttle_addr *e = len ? find(t, key, len) : NULL;
    return e && e->until_ms > now_ms ? e->until_ms - now_ms : 0;
}

uint64_t dt_admin_throttle_failed(struct dt_admin_throttle *t, const char *peer, uint64_t now_ms,
                                  uint32_t *failures)
{
    unsigned char key[16];
    size_t len = t->limit ? key_of(peer, key) : 0;
    if (failures)
        *failures = 0;
    if (!len)
        return 0;
    struct throttle_addr *e = find(t, key, len);
    if (e && forgotten(e, now_ms))
        e->failures = 0;
    if (!e) {
        e = add(t, now_ms);
        memset(e, 0, sizeof(*e));
        memcpy(e->key, key, len);
        e->len = (uint8_t)len;
    }
    if (e->failures < UINT32_MAX)
        e->failures++;
    e->last_ms = now_ms;
    uint64_t hold = hold_after(t, e->failures);
    if (hold)
        e->until_ms = now_ms + hold;
    if (failures)
        *failures = e->failures;
    return hold;
}

void dt_admin_throttle_passed(struct dt_admin_throttle *t, const char *peer)
{
    unsigned char key[16];
    size_t len = t->limit && t->n ? key_of(peer, key) : 0;
    struct throttle_addr *e = len ? find(t, key, len) : NULL;
    if (e)
        *e = t->addrs[--t->n];
}

size_t dt_admin_throttle_held(const struct dt_admin_throttle *t, uint64_t now_ms)
{
    size_t held = 0;
    for (size_t i = 0; i < t->n; i++)
        held += t->addrs[i].until_ms > now_ms;
    return held;
}
