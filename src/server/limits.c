/* limits: --max-connections (the redirect connections open at once) and
 * --max-connections-per-ip (from one address). The total is one atomic counter; the
 * addresses are counted in a table shared by the workers under a mutex (an accept and a
 * close each take it once), an entry freed when its count is back to 0. */
#include "server/internal.h"

#include <netinet/in.h>
#include <stdlib.h>

#define BUCKETS 4096

struct ip_entry {
    uint64_t key;
    unsigned count;
    struct ip_entry *next;
};

struct ip_counts {
    pthread_mutex_t lock;
    struct ip_entry *buckets[BUCKETS];
};

static pthread_mutex_t make_lock = PTHREAD_MUTEX_INITIALIZER;

/* An address as a 64-bit key (never 0): FNV-1a over its bytes (IPv4-mapped IPv6 as IPv4). */
static uint64_t key_of(const struct sockaddr_storage *ss)
{
    const unsigned char *p = NULL;
    size_t n = 0;
    if (ss->ss_family == AF_INET) {
        p = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
        n = 4;
    } else if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        p = IN6_IS_ADDR_V4MAPPED(a) ? a->s6_addr + 12 : a->s6_addr;
        n = IN6_IS_ADDR_V4MAPPED(a) ? 4 : 16;
    }
    uint64_t h = dt_hash_bytes(p, n);
    return n && h ? h : 0;
}

static struct ip_counts *counts(struct dt_server *s)
{
    pthread_mutex_lock(&make_lock);
    if (!s->ips) {
        s->ips = dt_xcalloc(1, sizeof(*s->ips));
        pthread_mutex_init(&s->ips->lock, NULL);
    }
    pthread_mutex_unlock(&make_lock);
    return s->ips;
}

int limits_take(struct dt_server *s, struct conn *c, const struct sockaddr_storage *ss)
{
    const struct dt_server_config *cfg = s->cfg;
    c->counted = false;
    c->ip_key = 0;
    if (cfg->max_connections) {
        unsigned long n = atomic_fetch_add_explicit(&s->open_conns, 1, memory_order_relaxed);
        c->counted = true;
        if (n >= cfg->max_connections)
            return 1;
    }
    uint64_t key = cfg->max_connections_per_ip && ss ? key_of(ss) : 0;
    if (!key)
        return 0;
    struct ip_counts *t = counts(s);
    pthread_mutex_lock(&t->lock);
    struct ip_entry **b = &t->buckets[key % BUCKETS], *e = *b;
    while (e && e->key != key)
        e = e->next;
    if (!e) {
        e = dt_xcalloc(1, sizeof(*e));
        e->key = key;
        e->next = *b;
        *b = e;
    }
    e->count++;
    c->ip_key = key;
    bool over = e->count > cfg->max_connections_per_ip;
    pthread_mutex_unlock(&t->lock);
    return over ? 2 : 0;
}

void limits_give(struct dt_server *s, struct conn *c)
{
    if (c->counted)
        atomic_fetch_sub_explicit(&s->open_conns, 1, memory_order_relaxed);
    c->counted = false;
    if (!c->ip_key)
        return;
    struct ip_counts *t = s->ips;
    pthread_mutex_lock(&t->lock);
    struct ip_entry **b = &t->buckets[c->ip_key % BUCKETS];
    while (*b && (*b)->key != c->ip_key)
        b = &(*b)->next;
    if (*b && --(*b)->count == 0) {
        struct ip_entry *gone = *b;
        *b = gone->next;
        free(gone);
    }
    pthread_mutex_unlock(&t->lock);
    c->ip_key = 0;
}

void limits_free(struct dt_server *s)
{
    if (!s->ips)
        return;
    for (size_t i = 0; i < BUCKETS; i++)
        while (s->ips->buckets[i]) {
            struct ip_entry *e = s->ips->buckets[i];
            s->ips->buckets[i] = e->next;
            free(e);
        }
    pthread_mutex_destroy(&s->ips->lock);
    free(s->ips);
    s->ips = NULL;
}
