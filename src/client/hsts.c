/* hsts: the HSTS store (RFC 6797, C7), kept in curl's --hsts file format so that detour and
 * curl can share one file:   host "YYYYMMDD HH:MM:SS"   (a leading dot: includeSubDomains). */
#include "client/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define UNLIMITED ((time_t)INT64_MAX)

struct hsts_entry {
    char *host; /* lower-case, no final dot */
    time_t expires;
    bool subdomains;
};

struct dt_client_hsts {
    struct hsts_entry *entries;
    size_t n, cap;
};

struct dt_client_hsts *dt_client_hsts_new(void)
{
    return calloc(1, sizeof(struct dt_client_hsts));
}

void dt_client_hsts_free(struct dt_client_hsts *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        free(h->entries[i].host);
    free(h->entries);
    free(h);
}

static struct hsts_entry *find(const struct dt_client_hsts *h, const char *host)
{
    for (size_t i = 0; i < h->n; i++)
        if (!strcmp(h->entries[i].host, host))
            return &h->entries[i];
    return NULL;
}

static void forget(struct dt_client_hsts *h, const char *host)
{
    struct hsts_entry *e = find(h, host);
    if (!e)
        return;
    free(e->host);
    *e = h->entries[--h->n];
}

static int put(struct dt_client_hsts *h, const char *host, time_t expires, bool subdomains)
{
    struct hsts_entry *e = find(h, host);
    if (!e) {
        if (h->n == h->cap) {
            size_t cap = h->cap ? h->cap * 2 : 16;
            struct hsts_entry *p = realloc(h->entries, cap * sizeof(*p));
            if (!p)
                return DT_CLIENT_ENOMEM;
            h->entries = p;
            h->cap = cap;
        }
        e = &h->entries[h->n];
        e->host = strdup(host);
        if (!e->host)
            return DT_CLIENT_ENOMEM;
        h->n++;
    }
    e->expires = expires;
    e->subdomains = subdomains;
    return 0;
}

/* Lower-cases host without a final dot into out; false for a name HSTS does not apply to
 * (an IP address: RFC 6797 8.1.1) or one too long. */
static bool normalize(const char *host, char *out, size_t cap)
{
    size_t n = strlen(host);
    if (n && host[n - 1] == '.')
        n--;
    if (n == 0 || n >= cap || host[0] == '[')
        return false;
    memcpy(out, host, n);
    out[n] = '\0';
    dt_ascii_lower(out, n);
    bool digits_and_dots = true;
    for (size_t i = 0; i < n; i++)
        if (!((out[i] >= '0' && out[i] <= '9') || out[i] == '.'))
            digits_and_dots = false;
    return !digits_and_dots;
}

bool dt_client_hsts_known(const struct dt_client_hsts *h, const char *host, time_t now)
{
    char name[256];
    if (!h || !normalize(host, name, sizeof(name)))
        return false;
    /* RFC 6797 8.2: the host itself (a "congruent match"), or a superdomain that asked for
     * includeSubDomains. */
    const char *p = name;
    for (;;) {
        const struct hsts_entry *e = find(h, p);
        if (e && e->expires > now && (p == name || e->subdomains))
            return true;
        p = strchr(p, '.');
        if (!p)
            return false;
        p++;
    }
}

int dt_client_hsts_learn(struct dt_client_hsts *h, const char *host, const char *value, time_t now)
{
    char name[256];
    if (!normalize(host, name, sizeof(name)))
        return 0; /* nothing to learn for an IP address */
    /* RFC 6797 6.1: directives separated by ';', names case-insensitive, values token or
     * quoted-string, each directive at most once; max-age is required. */
    int64_t max_age = -1;
    bool subdomains = false, seen_max_age = false;
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        if (!*p)
            break;
        const char *ns = p;
        while (*p && dt_tchar[(unsigned char)*p])
            p++;
        struct dt_str dname = {ns, (size_t)(p - ns)};
        while (*p == ' ' || *p == '\t')
            p++;
        struct dt_str dval = DT_STR_NULL;
        char unquoted[32];
        if (*p == '=') {
            p++;
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p == '"') {
                size_t k = 0;
                p++;
                while (*p && *p != '"' && k < sizeof(unquoted) - 1) {
                    if (*p == '\\' && p[1])
                        p++;
                    unquoted[k++] = *p++;
                }
                if (*p != '"')
                    return DT_CLIENT_EINVAL;
                p++;
                dval = dt_str_make(unquoted, k);
            } else {
                const char *vs = p;
                while (*p && dt_tchar[(unsigned char)*p])
                    p++;
                dval = dt_str_make(vs, (size_t)(p - vs));
            }
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p && *p != ';')
            return DT_CLIENT_EINVAL;
        if (dt_str_ieq(dname, "max-age")) {
            if (seen_max_age || dt_parse_int(dval, 0, INT64_MAX, &max_age) != 0)
                return DT_CLIENT_EINVAL;
            seen_max_age = true;
        } else if (dt_str_ieq(dname, "includesubdomains")) {
            if (subdomains)
                return DT_CLIENT_EINVAL;
            subdomains = true;
        }
        /* unknown directives are ignored (RFC 6797 6.1) */
    }
    if (!seen_max_age)
        return DT_CLIENT_EINVAL;
    if (max_age == 0) {
        forget(h, name); /* RFC 6797 6.1.1: max-age=0 removes the host */
        return 0;
    }
    time_t expires = max_age > (int64_t)(UNLIMITED - now) ? UNLIMITED : now + (time_t)max_age;
    return put(h, name, expires, subdomains);
}

/* "YYYYMMDD HH:MM:SS" -> time_t (UTC). */
static int parse_stamp(const char *s, time_t *out)
{
    if (!strcmp(s, "unlimited")) {
        *out = UNLIMITED;
        return 0;
    }
    char iso[32];
    if (strlen(s) != 17 || s[8] != ' ')
        return DT_EINVAL;
    snprintf(iso, sizeof(iso), "%.4s-%.2s-%.2sT%.8sZ", s, s + 4, s + 6, s + 9);
    return dt_parse_rfc3339(dt_str_make(iso, strlen(iso)), out);
}

int dt_client_hsts_load(struct dt_client_hsts *h, const char *path, time_t now)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : DT_CLIENT_EIO;
    char line[1024];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '#' || *s == '\n' || *s == '\0')
            continue;
        /* host "stamp" */
        char *sp = strpbrk(s, " \t");
        char *q1 = sp ? strchr(sp, '"') : NULL;
        char *q2 = q1 ? strchr(q1 + 1, '"') : NULL;
        if (!q2)
            continue; /* a line we cannot read is skipped, as curl does */
        *sp = '\0';
        *q2 = '\0';
        time_t expires;
        if (parse_stamp(q1 + 1, &expires) != 0 || expires <= now)
            continue; /* expired entries are dropped, as curl does */
        bool sub = s[0] == '.';
        char name[256];
        if (normalize(sub ? s + 1 : s, name, sizeof(name)))
            rc = put(h, name, expires, sub);
    }
    fclose(f);
    return rc;
}

int dt_client_hsts_save(const struct dt_client_hsts *h, const char *path, time_t now)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return DT_CLIENT_EIO;
    fputs("# Your HSTS cache. https://curl.se/docs/hsts.html\n"
          "# Written by detour; curl reads it with --hsts.\n",
          f);
    for (size_t i = 0; i < h->n; i++) {
        const struct hsts_entry *e = &h->entries[i];
        if (e->expires <= now)
            continue;
        if (e->expires == UNLIMITED) {
            fprintf(f, "%s%s \"unlimited\"\n", e->subdomains ? "." : "", e->host);
            continue;
        }
        struct tm tm;
        gmtime_r(&e->expires, &tm);
        fprintf(f, "%s%s \"%04d%02d%02d %02d:%02d:%02d\"\n", e->subdomains ? "." : "", e->host,
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    }
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return DT_CLIENT_EIO;
    }
    return 0;
}
