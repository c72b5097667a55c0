/* Unit tests for src/rules/import*.c: format names and guessing, and each converter (CSV,
 * nginx map, Netlify _redirects) line by line, its errors with line:column, whole sample
 * files against tests/data/import/ *.expected, and the examples of docs/import.md. */
#include "rules/import.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- helpers ------------------------------------------------------------------------------ */

/* The outcome of one conversion: the rules one a line, their input lines ("2 3 5"), and the
 * error messages one a line. */
static struct {
    int rc;
    char rules[16384];
    char lines[1024];
    char errors[16384];
} R;

static void append(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(dst), m = strlen(s);
    if (n + m < cap)
        memcpy(dst + n, s, m + 1);
}

/* ---- streams (issue 14: detour check streams its input) -------------------------------- */

/* Writes what a conversion gave: its return code, each rule with its line, every message. */
static void outcome(struct dt_buf *o, int rc, const struct dt_import *im,
                    const struct dt_errors *errs)
{
    dt_buf_appendf(o, "rc %d\n", rc);
    for (size_t i = 0; i < im->n; i++)
        dt_buf_appendf(o, "%u\t%s\n", (unsigned)im->lines[i].line, im->lines[i].text);
    dt_buf_append(o, errs->text.ptr ? errs->text.ptr : "", errs->text.len);
    dt_buf_terminate(o);
}

/* Converts text whole into o. */
static int whole_outcome(enum dt_rule_format f, const char *text, size_t len, int status,
                         struct dt_buf *o)
{
    struct dt_import im;
    struct dt_errors errs;
    dt_import_init(&im);
    dt_errors_init(&errs);
    int rc = dt_import_convert(f, "in", dt_str_make(text, len), status, &im, &errs);
    outcome(o, rc, &im, &errs);
    dt_import_dispose(&im);
    dt_errors_dispose(&errs);
    return rc;
}

static uint32_t count_lf(const char *p, size_t n)
{
    uint32_t lf = 0;
    for (size_t i = 0; i < n; i++)
        lf += p[i] == '\n';
    return lf;
}

/* Feeds a stream text[from, to), its first byte on *line, and moves *line past it. */
static void feed_piece(struct dt_import_stream *s, const char *text, size_t from, size_t to,
                       uint32_t *line, int *rc, struct dt_import *im, struct dt_errors *errs)
{
    int r = dt_import_stream_feed(s, dt_str_make(text + from, to - from), *line, im, errs);
    if (r != 0 && (*rc == 0 || r == DT_ELIMIT))
        *rc = r;
    *line += count_lf(text + from, to - from);
}

/* Why a cut returned by dt_import_stream_whole is wrong, or NULL: past the text, inside a
 * line, or (for the same reason) between a CR and its LF. */
static const char *bad_cut(const char *text, size_t from, size_t avail, size_t w, bool eof)
{
    if (w > avail)
        return "past the text";
    if (eof && w != avail)
        return "at the end, not everything";
    if (w > 0 && w < avail && text[from + w - 1] != '\n')
        return "not after a line break";
    return NULL;
}

/* Converts text through a stream as a reader with a buffer of chunk bytes would: read chunk
 * more bytes, feed the whole records held, keep the rest (feed_empty: feed even when none
 * is whole). Returns false (with why) when a cut is wrong. */
static size_t reader_held; /* the most bytes the last reader_outcome held at once */

static bool reader_outcome(enum dt_rule_format f, const char *text, size_t len, int status,
                           size_t chunk, bool feed_empty, struct dt_buf *o, const char **why)
{
    reader_held = 0;
    struct dt_import_stream *s = dt_import_stream_new(f, "in", status);
    struct dt_import im;
    struct dt_errors errs;
    dt_import_init(&im);
    dt_errors_init(&errs);
    size_t start = 0, end = 0;
    uint32_t line = 1;
    int rc = 0;
    bool good = true;
    for (;;) {
        end += len - end < chunk ? len - end : chunk;
        if (end - start > reader_held)
            reader_held = end - start;
        bool eof = end == len;
        size_t w = dt_import_stream_whole(s, dt_str_make(text + start, end - start), eof);
        *why = bad_cut(text, start, end - start, w, eof);
        if (*why) {
            good = false;
            break;
        }
        if (w || feed_empty)
            feed_piece(s, text, start, start + w, &line, &rc, &im, &errs);
        start += w;
        if (eof)
            break;
    }
    outcome(o, rc, &im, &errs);
    dt_import_dispose(&im);
    dt_errors_dispose(&errs);
    dt_import_stream_free(s);
    return good;
}

/* Every cut dt_import_stream_whole gives on a prefix of text, from the start of the input:
 * cuts[0] = 0, then in increasing order, the last being len. Returns how many. */
static size_t all_cuts(enum dt_rule_format f, const char *text, size_t len, int status,
                       size_t *cuts)
{
    struct dt_import_stream *s = dt_import_stream_new(f, "in", status);
    size_t n = 0;
    cuts[n++] = 0;
    for (size_t k = 1; k <= len; k++) {
        size_t w = dt_import_stream_whole(s, dt_str_make(text, k), false);
        if (w > cuts[n - 1])
            cuts[n++] = w;
    }
    if (cuts[n - 1] != len)
        cuts[n++] = len;
    dt_import_stream_free(s);
    return n;
}

/* Converts text fed in the pieces between the cuts given (cuts[0] = 0 ... cuts[n-1] = len),
 * checking that each piece is what dt_import_stream_whole calls whole. */
static bool cuts_outcome(enum dt_rule_format f, const char *text, int status, const size_t *cuts,
                         size_t n, struct dt_buf *o)
{
    struct dt_import_stream *s = dt_import_stream_new(f, "in", status);
    struct dt_import im;
    struct dt_errors errs;
    dt_import_init(&im);
    dt_errors_init(&errs);
    uint32_t line = 1;
    int rc = 0;
    bool good = true;
    for (size_t i = 0; i + 1 < n; i++) {
        size_t piece = cuts[i + 1] - cuts[i];
        bool last = i + 2 == n;
        if (dt_import_stream_whole(s, dt_str_make(text + cuts[i], piece), last) != piece)
            good = false;
        feed_piece(s, text, cuts[i], cuts[i + 1], &line, &rc, &im, &errs);
    }
    outcome(o, rc, &im, &errs);
    dt_import_dispose(&im);
    dt_errors_dispose(&errs);
    dt_import_stream_free(s);
    return good;
}

static struct {
    unsigned inputs, failures;
} streams;

/* Prints a failed comparison (as TAP comments). */
static void show_difference(const char *how, const char *want, const char *got)
{
    printf("#   %s differs from the whole conversion\n#   whole:\n%s#   streamed:\n%s", how, want,
           got);
}

/* Checks that text converts alike whole and fed in pieces, split at every cut
 * dt_import_stream_whole gives: through readers of 1 to 64 bytes and some larger, at every
 * cut at once, and in two pieces at each cut. Prints why not and returns false. */
static bool streams_alike(enum dt_rule_format f, const char *text, size_t len, int status)
{
    if (len > 16384)
        return false; /* all_cuts tries every prefix: for the short texts of these tests */
    struct dt_buf want, got;
    dt_buf_init(&want);
    dt_buf_init(&got);
    bool same = true;
    if (whole_outcome(f, text, len, status, &want) == DT_EINVAL) {
        struct dt_import_stream *s = dt_import_stream_new(f, "in", status);
        same = s == NULL;
        dt_import_stream_free(s);
        goto done;
    }
    static const size_t larger[] = {65, 100, 128, 255, 1000, 4096, 65536};
    for (size_t k = 1; k <= 64 + DT_ARRAY_LEN(larger) && same; k++) {
        size_t chunk = k <= 64 ? k : larger[k - 65];
        for (int empty = 0; empty <= 1 && same; empty++) {
            got.len = 0;
            const char *why = NULL;
            char how[96];
            snprintf(how, sizeof(how), "a reader of %zu bytes%s", chunk,
                     empty ? " feeding empty pieces" : "");
            if (!reader_outcome(f, text, len, status, chunk, empty, &got, &why)) {
                printf("#   %s: a cut %s\n", how, why);
                same = false;
            } else if (strcmp(want.ptr, got.ptr) != 0) {
                show_difference(how, want.ptr, got.ptr);
                same = false;
            }
        }
    }
    size_t *cuts = malloc((len + 2) * sizeof(*cuts));
    size_t n = all_cuts(f, text, len, status, cuts);
    got.len = 0;
    if (same && (!cuts_outcome(f, text, status, cuts, n, &got) || strcmp(want.ptr, got.ptr))) {
        show_difference("fed at every cut", want.ptr, got.ptr);
        same = false;
    }
    for (size_t i = 1; i + 1 < n && same; i++) {
        size_t two[3] = {0, cuts[i], len};
        got.len = 0;
        if (!cuts_outcome(f, text, status, two, 3, &got) || strcmp(want.ptr, got.ptr)) {
            char how[64];
            snprintf(how, sizeof(how), "two pieces cut at %zu", cuts[i]);
            show_difference(how, want.ptr, got.ptr);
            same = false;
        }
    }
    free(cuts);
done:
    dt_buf_dispose(&want);
    dt_buf_dispose(&got);
    return same;
}

/* Converts text (named "in" in messages) and keeps the outcome in R; every input of these
 * tests is also checked to convert alike when streamed (counted in streams). */
static void run_len(enum dt_rule_format f, const char *text, size_t len, int status)
{
    streams.inputs++;
    if (!streams_alike(f, text, len, status)) {
        streams.failures++;
        printf("#   (input %u, format %s: '%.*s')\n", streams.inputs, dt_rule_format_name(f),
               (int)len, text);
    }
    struct dt_import im;
    struct dt_errors errs;
    dt_import_init(&im);
    dt_errors_init(&errs);
    R.rc = dt_import_convert(f, "in", dt_str_make(text, len), status, &im, &errs);
    R.rules[0] = R.lines[0] = R.errors[0] = '\0';
    for (size_t i = 0; i < im.n; i++) {
        char num[16];
        snprintf(num, sizeof(num), "%s%u", i ? " " : "", (unsigned)im.lines[i].line);
        append(R.lines, sizeof(R.lines), num);
        append(R.rules, sizeof(R.rules), im.lines[i].text);
        append(R.rules, sizeof(R.rules), "\n");
    }
    if (errs.text.len)
        append(R.errors, sizeof(R.errors), errs.text.ptr);
    dt_import_dispose(&im);
    dt_errors_dispose(&errs);
}

static void run(enum dt_rule_format f, const char *text, int status)
{
    run_len(f, text, strlen(text), status);
}

/* Checks that text converts to exactly the rules want, without errors. */
static void converts(enum dt_rule_format f, const char *text, const char *want, const char *name)
{
    run(f, text, 0);
    is_str(R.rules, want, name);
    if (R.errors[0] || R.rc != 0)
        printf("#   rc %d, errors:\n#   %s", R.rc, R.errors);
}

/* Checks that text gives exactly the error lines want (and DT_ESYNTAX). */
static void fails(enum dt_rule_format f, const char *text, const char *want, const char *name)
{
    run(f, text, 0);
    is_str(R.errors, want, name);
    if (R.rc != DT_ESYNTAX)
        printf("#   rc %d, not DT_ESYNTAX\n", R.rc);
}

/* Reads a whole file relative to the working directory (tests/); NULL if it cannot. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            char *more = realloc(buf, cap + 1);
            if (!more) {
                free(buf);
                buf = NULL;
            }
            buf = more;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

/* ---- format names ------------------------------------------------------------------------- */

static void format_names(void)
{
    enum dt_rule_format f = DT_FORMAT_DETOUR;
    is_int(dt_rule_format_parse("csv", &f), 0, "parse csv");
    is_int(f, DT_FORMAT_CSV, "csv is CSV");
    is_int(dt_rule_format_parse("nginx", &f), 0, "parse nginx");
    is_int(f, DT_FORMAT_NGINX_MAP, "nginx is NGINX_MAP");
    f = DT_FORMAT_DETOUR;
    is_int(dt_rule_format_parse("nginx-map", &f), 0, "parse nginx-map");
    is_int(f, DT_FORMAT_NGINX_MAP, "nginx-map is NGINX_MAP");
    is_int(dt_rule_format_parse("netlify", &f), 0, "parse netlify");
    is_int(f, DT_FORMAT_NETLIFY, "netlify is NETLIFY");
    f = DT_FORMAT_DETOUR;
    is_int(dt_rule_format_parse("_redirects", &f), 0, "parse _redirects");
    is_int(f, DT_FORMAT_NETLIFY, "_redirects is NETLIFY");
    is_int(dt_rule_format_parse("detour", &f), 0, "parse detour");
    is_int(f, DT_FORMAT_DETOUR, "detour is DETOUR");
    is_int(dt_rule_format_parse("CSV", &f), 0, "names ignore case");
    is_int(f, DT_FORMAT_CSV, "CSV is CSV");
    f = DT_FORMAT_NETLIFY;
    is_int(dt_rule_format_parse("apache", &f), DT_EINVAL, "unknown name");
    is_int(f, DT_FORMAT_NETLIFY, "unknown name leaves *out alone");
    is_int(dt_rule_format_parse("", &f), DT_EINVAL, "empty name");
    is_int(dt_rule_format_parse("nginx ", &f), DT_EINVAL, "no trimming");
    is_int(dt_rule_format_parse(NULL, &f), DT_EINVAL, "NULL name");

    is_int(dt_rule_format_guess("rules.csv"), DT_FORMAT_CSV, "guess *.csv");
    is_int(dt_rule_format_guess("/srv/export/LIST.CSV"), DT_FORMAT_CSV, "guess *.CSV");
    is_int(dt_rule_format_guess("conf.d/site.map"), DT_FORMAT_NGINX_MAP, "guess *.map");
    is_int(dt_rule_format_guess("redirects.nginx"), DT_FORMAT_NGINX_MAP, "guess *.nginx");
    is_int(dt_rule_format_guess("_redirects"), DT_FORMAT_NETLIFY, "guess _redirects");
    is_int(dt_rule_format_guess("site/public/_redirects"), DT_FORMAT_NETLIFY,
           "guess dir/_redirects");
    is_int(dt_rule_format_guess("old-site.redirects"), DT_FORMAT_NETLIFY, "guess *.redirects");
    is_int(dt_rule_format_guess("my_redirects"), DT_FORMAT_DETOUR, "not _redirects itself");
    is_int(dt_rule_format_guess("rules.txt"), DT_FORMAT_DETOUR, "guess other");
    is_int(dt_rule_format_guess("csv"), DT_FORMAT_DETOUR, "a name without a dot");
    is_int(dt_rule_format_guess("exports.csv/rules"), DT_FORMAT_DETOUR,
           "only the last component counts");
    is_int(dt_rule_format_guess(NULL), DT_FORMAT_DETOUR, "guess NULL");

    is_str(dt_rule_format_name(DT_FORMAT_DETOUR), "detour", "name of DETOUR");
    is_str(dt_rule_format_name(DT_FORMAT_CSV), "csv", "name of CSV");
    is_str(dt_rule_format_name(DT_FORMAT_NGINX_MAP), "nginx", "name of NGINX_MAP");
    is_str(dt_rule_format_name(DT_FORMAT_NETLIFY), "netlify", "name of NETLIFY");
    is_str(dt_rule_format_name((enum dt_rule_format)42), "unknown", "name of a bad value");
    for (int i = DT_FORMAT_DETOUR; i <= DT_FORMAT_NETLIFY; i++) {
        enum dt_rule_format back;
        ok(dt_rule_format_parse(dt_rule_format_name((enum dt_rule_format)i), &back) == 0 &&
               back == (enum dt_rule_format)i,
           "every name parses back to its format");
    }
}

/* ---- the API ------------------------------------------------------------------------------ */

static void api(void)
{
    struct dt_import im;
    struct dt_errors errs;
    dt_import_init(&im);
    dt_errors_init(&errs);
    is_int(dt_import_convert(DT_FORMAT_CSV, "in", DT_STR("/a,/b"), 200, &im, &errs), DT_EINVAL,
           "default_status 200 is refused");
    is_int(dt_import_convert((enum dt_rule_format)9, "in", DT_STR("/a,/b"), 0, &im, &errs),
           DT_EINVAL, "an unknown format is refused");
    is_int((int)im.n, 0, "nothing converted after DT_EINVAL");
    is_int(dt_import_convert(DT_FORMAT_CSV, "in", DT_STR("/a,/b"), 0, &im, &errs), 0, "convert");
    is_int(dt_import_convert(DT_FORMAT_NETLIFY, "in", DT_STR("\n/c /d"), 0, &im, &errs), 0,
           "convert more");
    is_int((int)im.n, 2, "conversions append");
    is_str(im.lines[0].text, "/a /b 307", "first");
    is_int(im.lines[0].line, 1, "first's line");
    is_str(im.lines[1].text, "/c /d 301", "second");
    is_int(im.lines[1].line, 2, "second's line");
    is_int(dt_import_convert(DT_FORMAT_CSV, NULL, DT_STR("/a"), 0, &im, &errs), DT_ESYNTAX,
           "NULL name");
    is_str(errs.text.ptr, "-:1:3: too few columns: expected source,target[,status[,options]]\n",
           "a NULL name reads '-'");
    is_int(errs.count, 1, "one error counted");
    dt_import_dispose(&im);
    is_int((int)im.n, 0, "dispose empties");
    ok(im.lines == NULL, "dispose frees the array");
    is_int(dt_import_convert(DT_FORMAT_CSV, "in", DT_STR_NULL, 0, &im, &errs), 0,
           "empty input (NULL pointer)");
    is_int((int)im.n, 0, "empty input gives nothing");
    dt_import_dispose(&im);
    dt_errors_dispose(&errs);

    run(DT_FORMAT_CSV, "/a,/b", 308);
    is_str(R.rules, "/a /b 308\n", "default_status applies to CSV");
    run(DT_FORMAT_CSV, "/a,/b,301", 308);
    is_str(R.rules, "/a /b 301\n", "a CSV status beats default_status");
    run(DT_FORMAT_NGINX_MAP, "map $uri $x { /a /b; }", 302);
    is_str(R.rules, "/a /b 302\n", "default_status applies to nginx");
    run(DT_FORMAT_NETLIFY, "/a /b", 303);
    is_str(R.rules, "/a /b 303\n", "default_status applies to Netlify");
    run(DT_FORMAT_NETLIFY, "/a /b 302", 308);
    is_str(R.rules, "/a /b 302\n", "a Netlify status beats default_status");

    run(DT_FORMAT_CSV, "\xEF\xBB\xBF/a,/b c", 0);
    is_str(R.errors, "in:1:6: whitespace inside the target (write %20)\n",
           "a byte order mark is skipped and not counted as a column");

    /* Detour's own format is copied as it is. */
    run(DT_FORMAT_DETOUR, "  /a /b 301  \r\n# comment\n\n\t/c   /d\n   # indented\n/e /f", 0);
    is_str(R.rules, "/a /b 301\n/c   /d\n/e /f\n", "detour lines are copied");
    is_str(R.lines, "1 4 6", "detour lines keep their numbers");
    is_int(R.rc, 0, "detour: no errors");
    run_len(DT_FORMAT_DETOUR, "/a /b\n/c\0 /d\n/e\x01 /f\n/g /h", 25, 0);
    is_str(R.errors, "in:2:3: control character in a rule\nin:3:3: control character in a rule\n",
           "detour lines with control characters are reported");
    is_str(R.rules, "/a /b\n/g /h\n", "the other lines are copied");
}

/* ---- CSV ---------------------------------------------------------------------------------- */

static void csv_positional(void)
{
    converts(DT_FORMAT_CSV, "/old,/new\n", "/old /new 307\n", "source,target; 307 by default");
    converts(DT_FORMAT_CSV, "/old,/new,301", "/old /new 301\n", "status; no final newline");
    converts(DT_FORMAT_CSV, "/old,/new,,cache=60", "/old /new 307 cache=60\n",
             "empty status: the default");
    converts(DT_FORMAT_CSV, "/a,/b,308,query=drop;cache=60 from=2026-01-01T00:00:00Z",
             "/a /b 308 query=drop cache=60 from=2026-01-01T00:00:00Z\n",
             "options separated by ';' and spaces");
    converts(DT_FORMAT_CSV, "/a,/b,302,\"; until=2027-01-01 ;since=2026-06-01T12:00:00+02:00; \"",
             "/a /b 302 until=2027-01-01T00:00:00Z since=2026-06-01T10:00:00Z\n",
             "empty options between separators are skipped; the codec writes times in UTC");
    converts(DT_FORMAT_CSV, "/a,/b,303,", "/a /b 303\n", "empty options column");
    converts(DT_FORMAT_CSV, "  /a  ,\t/b , 307 ", "/a /b 307\n", "blanks around fields");

    converts(DT_FORMAT_CSV, "example.com/old,/new", "example.com/old /new 307\n", "HOST/path");
    converts(DT_FORMAT_CSV, "Example.COM/Old,/new", "example.com/Old /new 307\n",
             "host lower-cased, path kept");
    converts(DT_FORMAT_CSV, "https://example.com/old,/new", "https://example.com/old /new 307\n",
             "a scheme is kept");
    converts(DT_FORMAT_CSV, "HTTP://example.com/old,/new", "http://example.com/old /new 307\n",
             "scheme lower-cased");
    converts(DT_FORMAT_CSV, "example.com,https://example.net/",
             "example.com/ https://example.net/ 307\n", "a host alone is its root");
    converts(DT_FORMAT_CSV, "https://example.com?x=1,/b", "https://example.com/?x=1 /b 307\n",
             "a host and a query");
    converts(DT_FORMAT_CSV, "*.example.com/a,/b\n.example.com/c,/d",
             "*.example.com/a /b 307\n.example.com/c /d 307\n", "wildcard hosts pass through");
    converts(DT_FORMAT_CSV, "/docs/*,/manual/:splat\n/users/:id,/people/:id",
             "/docs/* /manual/:splat 307\n/users/:id /people/:id 307\n",
             "detour's prefixes and placeholders pass through");
    converts(DT_FORMAT_CSV, "\"~^/item/([0-9]+)$\",/items/$1,302",
             "~^/item/([0-9]+)$ /items/$1 302\n", "a regular expression source");
    converts(DT_FORMAT_CSV, "/store?id=:id,/shop/:id", "/store?id=:id /shop/:id 307\n",
             "query conditions pass through");
    converts(DT_FORMAT_CSV,
             "/caf\xc3\xa9,/\xc3\xbc"
             "ber",
             "/caf%C3%A9 /%C3%BCber 307\n", "non-ASCII bytes are percent-encoded");
    converts(DT_FORMAT_CSV,
             "/x,https://b\xc3\xbc"
             "cher.example/\xc3\xa9",
             "/x https://b\xc3\xbc"
             "cher.example/%C3%A9 307\n",
             "but not in a target's host");
    fails(DT_FORMAT_CSV,
          "b\xc3\xbc"
          "cher.example/x,/y",
          "in:1:1: bad host name 'b\xc3\xbc"
          "cher.example' in the source (letters, digits, '-' "
          "and '.'; no port; xn-- for international names)\n",
          "a source host must be ASCII");
    converts(DT_FORMAT_CSV, "/a,https://example.com/b?c=d#e",
             "/a https://example.com/b?c=d#e 307\n", "absolute target with query and fragment");

    /* Skipped lines, and line numbers. */
    run(DT_FORMAT_CSV, "# a comment\n\n/a,/b\n   \n  # indented comment\n,,,\n\"\",\"\"\n/c,/d\n",
        0);
    is_str(R.rules, "/a /b 307\n/c /d 307\n", "comments, blank lines and empty rows skipped");
    is_str(R.lines, "3 8", "lines counted across skipped lines");
    is_int(R.rc, 0, "skipped lines are no error");
    run(DT_FORMAT_CSV, "/a,/b\r\n\r\n/c,/d,301\r\n", 0);
    is_str(R.rules, "/a /b 307\n/c /d 301\n", "CRLF");
    is_str(R.lines, "1 3", "CRLF line numbers");
}

/* A Cloudflare bulk-redirect export without its header: booleans in columns 4 to 7. */
static void csv_cloudflare_positional(void)
{
    converts(DT_FORMAT_CSV,
             "example.com/old,https://example.com/new,301,TRUE,FALSE,FALSE,FALSE\n"
             "example.com/docs,https://docs.example.com,301,FALSE,TRUE,TRUE,TRUE\n"
             "/plain,/x,302,TRUE\n"
             "/opts,/y,302,query=drop\n",
             "example.com/old https://example.com/new 301 query=keep\n"
             ".example.com/docs/* https://docs.example.com/:splat 301 query=drop\n"
             "/plain /x 302 query=keep\n"
             "/opts /y 302 query=drop\n",
             "headerless Cloudflare rows, and a fourth column of options still works");
}

static void csv_rfc4180(void)
{
    converts(DT_FORMAT_CSV, "\"/a\",\"/b\",\"301\"", "/a /b 301\n", "quoted fields");
    converts(DT_FORMAT_CSV, "\"/a,b\",\"/c,d\"", "/a,b /c,d 307\n", "commas inside quotes");
    converts(DT_FORMAT_CSV, "\"/q\"\"x\",/y", "/q\"x /y 307\n", "a doubled quote is a quote");
    converts(DT_FORMAT_CSV, "  \"/a\"  ,  \"/b\"  ", "/a /b 307\n", "blanks around quotes");
    converts(DT_FORMAT_CSV, "/a,/b,,\"\"", "/a /b 307\n", "an empty quoted field");

    /* A line break inside a quoted field is part of it: the record goes on. */
    run(DT_FORMAT_CSV,
        "/a,/b,301,\"query=drop\ncache=60\"\n/c,/d\n\"/e\",\"/f\",\"\",\"\r\n\r\n\"\n/g,/h", 0);
    is_str(R.rules, "/a /b 301 query=drop cache=60\n/c /d 307\n/e /f 307\n/g /h 307\n",
           "line breaks inside quoted fields");
    is_str(R.lines, "1 3 4 7", "records start on the right lines");
    is_int(R.rc, 0, "no errors");
    fails(DT_FORMAT_CSV, "/a,/b,301,\"query=drop\n  colour=red\"\n/c,/d e",
          "in:2:3: unknown option 'colour' (known: query=keep|drop, cache=SECONDS, from=TIME, "
          "until=TIME, since=TIME, promote-after=AGE)\n"
          "in:3:6: whitespace inside the target (write %20)\n",
          "errors inside and after a multi-line field have their own line and column");
    fails(DT_FORMAT_CSV, "\"/a\nb\",/c", "in:1:4: whitespace inside the source (write %20)\n",
          "a line break inside a quoted source is whitespace");

    fails(DT_FORMAT_CSV, "/ok,/fine\n\"/a,/b\n/c,/d\n",
          "in:2:1: unterminated quoted field (it needs a closing '\"')\n",
          "an unterminated quote runs to the end");
    is_str(R.rules, "/ok /fine 307\n", "rows before it converted");
    fails(DT_FORMAT_CSV, "\"/a\"x,/b\n/c,/d",
          "in:1:5: text after the closing quote of a field (inside quotes, write a quote as "
          "\"\")\n",
          "text after a closing quote");
    is_str(R.rules, "/c /d 307\n", "the next line is read");
    fails(DT_FORMAT_CSV, "/a\"b,/c\n/d,/e",
          "in:1:3: a quote inside an unquoted field (quote the whole field and double the "
          "quote: \"a\"\"b\")\n",
          "a quote inside an unquoted field");
    is_str(R.rules, "/d /e 307\n", "the next line is read");

    /* Columns point into quoted fields, counting a doubled quote as two characters. */
    fails(DT_FORMAT_CSV, "/a,\"/b c\"", "in:1:7: whitespace inside the target (write %20)\n",
          "column inside quotes");
    fails(DT_FORMAT_CSV, "/a,\"/b\"\"c d\"", "in:1:10: whitespace inside the target (write %20)\n",
          "column after a doubled quote");
    fails(DT_FORMAT_CSV, "/caf\xc3\xa9,/b c", "in:1:9: whitespace inside the target (write %20)\n",
          "columns count characters, not bytes");
    fails(DT_FORMAT_CSV, "/a,/b,301,\"cache=1;\"\"x\"",
          "in:1:20: expected an option KEY=VALUE, "
          "not '\"x'\n",
          "option column inside quotes");
}

static void csv_errors(void)
{
    fails(DT_FORMAT_CSV, "/a,", "in:1:4: missing target\n", "missing target");
    fails(DT_FORMAT_CSV, "/a,\"\",301", "in:1:4: missing target\n", "empty quoted target");
    fails(DT_FORMAT_CSV, ",/b", "in:1:1: missing source\n", "missing source");
    fails(DT_FORMAT_CSV, "/a",
          "in:1:3: too few columns: expected source,target[,status[,options]]\n",
          "too few columns");
    fails(DT_FORMAT_CSV, "\"/a\"",
          "in:1:5: too few columns: expected source,target[,status[,"
          "options]]\n",
          "too few columns after a quoted field");
    fails(DT_FORMAT_CSV, "/a,/b,301,,x",
          "in:1:12: include_subdomains takes TRUE or FALSE, not 'x'\n",
          "five columns are Cloudflare's order: booleans after the status");
    fails(DT_FORMAT_CSV, "/a,/b,301,TRUE,FALSE,FALSE,FALSE,x",
          "in:1:34: too many columns (8): expected source,target[,status[,options]], or "
          "Cloudflare's source,target,status,preserve_query_string,include_subdomains,"
          "subpath_matching,preserve_path_suffix\n",
          "too many columns");
    fails(DT_FORMAT_CSV, "/a,/b,200",
          "in:1:7: status '200' is not a redirect status (301, 302, 303, 307 or 308)\n",
          "status 200");
    fails(DT_FORMAT_CSV, "/a,/b,moved",
          "in:1:7: status 'moved' is not a redirect status (301, 302, 303, 307 or 308)\n",
          "status not a number");
    fails(DT_FORMAT_CSV, "/a,/b,3010",
          "in:1:7: status '3010' is not a redirect status (301, 302, 303, 307 or 308)\n",
          "status out of range");
    fails(DT_FORMAT_CSV, "/old page,/new", "in:1:5: whitespace inside the source (write %20)\n",
          "whitespace in the source");
    fails(DT_FORMAT_CSV, "/old,\"/new\tpage\"",
          "in:1:11: whitespace inside the target (write %20)\n", "a tab in the target");
    fails(DT_FORMAT_CSV, "/a\x01,/b", "in:1:3: control character inside the source\n",
          "control character");
    fails(DT_FORMAT_CSV, "/a,ftp://example.com/",
          "in:1:4: the target must be a path starting with '/' or an http(s) URL, not "
          "'ftp://example.com/'\n",
          "target scheme");
    fails(DT_FORMAT_CSV, "/a,example.com/new",
          "in:1:4: the target must be a path starting with '/' or an http(s) URL, not "
          "'example.com/new'\n",
          "a target needs a scheme or a '/'");
    fails(DT_FORMAT_CSV, "/a,https:///x", "in:1:4: the target 'https:///x' has no host\n",
          "target without host");
    fails(DT_FORMAT_CSV, "/a,//evil.example/",
          "in:1:4: the target '//evil.example/' starts with '//' (write its scheme: https://)\n",
          "scheme-relative target");
    fails(DT_FORMAT_CSV, "old-page,/new",
          "in:1:1: the source must be a path starting with '/', HOST/path or an http(s) URL, "
          "not 'old-page'\n",
          "a word is not a source");
    fails(DT_FORMAT_CSV, "ftp://example.com/a,/b",
          "in:1:1: the source's scheme must be http or https, not 'ftp'\n", "source scheme");
    fails(DT_FORMAT_CSV, "https:///a,/b", "in:1:1: the source 'https:///a' has no host\n",
          "source without host");
    fails(DT_FORMAT_CSV, "https://example.com:8443/a,/b",
          "in:1:9: bad host name 'example.com:8443' in the source (letters, digits, '-' and "
          "'.'; no port; xn-- for international names)\n",
          "a port in the source");
    fails(DT_FORMAT_CSV, "example.com:8443/a,/b",
          "in:1:1: bad host name 'example.com:8443' in the source (letters, digits, '-' and "
          "'.'; no port; xn-- for international names)\n",
          "a port after a bare host");
    fails(DT_FORMAT_CSV, "/a#top,/b", "in:1:3: a source may not hold a fragment ('#')\n",
          "fragment in the source");
    fails(DT_FORMAT_CSV, "/a,/b,301,colour=red",
          "in:1:11: unknown option 'colour' (known: query=keep|drop, cache=SECONDS, from=TIME, "
          "until=TIME, since=TIME, promote-after=AGE)\n",
          "unknown option");
    fails(DT_FORMAT_CSV, "/a,/b,301,cache=60 fast",
          "in:1:20: expected an option KEY=VALUE, not 'fast'\n", "option without '='");
    fails(DT_FORMAT_CSV, "/a,/b,301,query=maybe",
          "in:1:17: query= takes keep or drop, not 'maybe'\n", "bad query=");
    fails(DT_FORMAT_CSV, "/a,/b,301,cache=-1",
          "in:1:17: cache= takes a number of seconds, not '-1'\n", "bad cache=");
    fails(DT_FORMAT_CSV, "/a,/b,301,until=soon",
          "in:1:17: until= takes an RFC 3339 time such as 2026-12-01T06:00:00Z, not 'soon'\n",
          "bad until=");
    fails(DT_FORMAT_CSV, "/a,/b,301,since=2026-13-01",
          "in:1:17: since= takes an RFC 3339 time such as 2026-12-01T06:00:00Z, not "
          "'2026-13-01'\n",
          "bad since=");
    fails(DT_FORMAT_CSV, "/a,/b,301,cache=1;cache=2", "in:1:19: option 'cache' given twice\n",
          "an option twice");

    /* Every bad line is reported and the good ones are converted. */
    fails(DT_FORMAT_CSV, "/a,/b\n/c\n/d,/e,999\n/f,/g\n/h i,/j\n",
          "in:2:3: too few columns: expected source,target[,status[,options]]\n"
          "in:3:7: status '999' is not a redirect status (301, 302, 303, 307 or 308)\n"
          "in:5:3: whitespace inside the source (write %20)\n",
          "all errors reported");
    is_str(R.rules, "/a /b 307\n/f /g 307\n", "good lines converted");
    is_str(R.lines, "1 4", "good lines' numbers");
}

static void csv_header(void)
{
    converts(DT_FORMAT_CSV, "source,target,status\n/a,/b,301\n", "/a /b 301\n", "header");
    converts(DT_FORMAT_CSV, "Source_URL,TARGET_URL,Status_Code\n/a,/b,\n", "/a /b 307\n",
             "header names ignore case; empty status");
    converts(DT_FORMAT_CSV, "source,options,status,target\n/a,cache=5,302,/b\n",
             "/a /b 302 cache=5\n", "columns by name in any order");
    converts(DT_FORMAT_CSV, "\"source\",\"target\"\n\"/a\",\"/b\"", "/a /b 307\n", "quoted header");
    converts(DT_FORMAT_CSV, "# exported 2026-11-24\n\nsource,target\n/a,/b", "/a /b 307\n",
             "comments before the header");
    run(DT_FORMAT_CSV, "source,target\n", 0);
    ok(R.rc == 0 && R.rules[0] == '\0', "a header alone converts to nothing");
    fails(DT_FORMAT_CSV, "/a,/b\nsource,target\n",
          "in:2:1: the source must be a path starting with '/', HOST/path or an http(s) URL, "
          "not 'source'\n",
          "only the first row can be a header");

    /* Cloudflare's parameters. */
    const char *cf = "source_url,target_url,status_code,preserve_query_string,include_subdomains,"
                     "subpath_matching,preserve_path_suffix\n";
    char text[1024];
#define CF(row) (snprintf(text, sizeof(text), "%s%s", cf, row), text)
    converts(DT_FORMAT_CSV, CF("example.com/a,https://example.net/b,301,TRUE,FALSE,FALSE,FALSE"),
             "example.com/a https://example.net/b 301 query=keep\n", "preserve_query_string TRUE");
    converts(DT_FORMAT_CSV, CF("example.com/a,https://example.net/b,301,false,,,"),
             "example.com/a https://example.net/b 301 query=drop\n",
             "preserve_query_string false (any case)");
    converts(DT_FORMAT_CSV, CF("example.com/a,https://example.net/b,,,,,"),
             "example.com/a https://example.net/b 307 query=drop\n",
             "empty booleans are FALSE, as in Cloudflare");
    converts(DT_FORMAT_CSV, CF("example.com/a,/b,301,,TRUE,,"),
             ".example.com/a /b 301 query=drop\n", "include_subdomains: .HOST");
    converts(DT_FORMAT_CSV, CF("https://example.com/a,/b,301,,TRUE,,"),
             "https://.example.com/a /b 301 query=drop\n", "include_subdomains keeps the scheme");
    converts(DT_FORMAT_CSV, CF("*.example.com/a,/b,301,,true,,"),
             ".example.com/a /b 301 query=drop\n", "include_subdomains on *.HOST");
    converts(DT_FORMAT_CSV, CF(".example.com/a,/b,301,,TRUE,,"),
             ".example.com/a /b 301 query=drop\n", "include_subdomains on .HOST");
    converts(DT_FORMAT_CSV, CF("example.com/a,/b,301,,,TRUE,"),
             "example.com/a/* /b 301 query=drop\n", "subpath_matching: /a/*");
    converts(DT_FORMAT_CSV, CF("example.com/a/,/b,301,,,TRUE,"),
             "example.com/a/* /b 301 query=drop\n", "subpath_matching on /a/");
    converts(DT_FORMAT_CSV, CF("example.com,/b,301,,,TRUE,"), "example.com/* /b 301 query=drop\n",
             "subpath_matching on a host alone");
    converts(DT_FORMAT_CSV, CF("example.com/a*,/b,301,,,TRUE,"),
             "example.com/a* /b 301 query=drop\n", "subpath_matching on a prefix already");
    converts(DT_FORMAT_CSV, CF("example.com/a,https://example.net/b,301,,,TRUE,TRUE"),
             "example.com/a/* https://example.net/b/:splat 301 query=drop\n",
             "preserve_path_suffix: /:splat");
    converts(DT_FORMAT_CSV, CF("example.com/a/,https://example.net/b/,301,,,TRUE,TRUE"),
             "example.com/a/* https://example.net/b/:splat 301 query=drop\n",
             "preserve_path_suffix after a '/'");
    converts(DT_FORMAT_CSV, CF("example.com/a,https://example.net,301,,,TRUE,TRUE"),
             "example.com/a/* https://example.net/:splat 301 query=drop\n",
             "preserve_path_suffix on a host alone");
    converts(DT_FORMAT_CSV, CF("example.com/a,\"https://example.net/b?x=1,2#top\",301,,,TRUE,TRUE"),
             "example.com/a/* https://example.net/b/:splat?x=1,2#top 301 query=drop\n",
             "the splat goes before the query");
    converts(DT_FORMAT_CSV, CF("example.com/a,/b/:splat/x,301,,,TRUE,TRUE"),
             "example.com/a/* /b/:splat/x 301 query=drop\n", "a target with its own :splat");
    converts(DT_FORMAT_CSV, CF("example.com/a,/b,301,,,FALSE,TRUE"),
             "example.com/a /b 301 query=drop\n",
             "preserve_path_suffix without subpath_matching does nothing");
    fails(DT_FORMAT_CSV, CF("example.com/a,/b,301,yes,,,"),
          "in:2:22: preserve_query_string takes TRUE or FALSE, not 'yes'\n", "bad boolean");
    fails(DT_FORMAT_CSV, CF("example.com/a,/b,301,,1,,"),
          "in:2:23: include_subdomains takes TRUE or FALSE, not '1'\n", "bad boolean 1");
    fails(DT_FORMAT_CSV, CF("/a,/b,301,,TRUE,,"),
          "in:2:1: include_subdomains needs a host in the source, not '/a'\n",
          "include_subdomains without a host");
    fails(DT_FORMAT_CSV, CF("~^/a,/b,301,,,TRUE,"),
          "in:2:1: subpath_matching does not apply to a regular expression\n",
          "subpath_matching on a regex");
    fails(DT_FORMAT_CSV, CF("example.com/a?x=1,/b,301,,,TRUE,"),
          "in:2:1: subpath_matching cannot be used with a query in the source\n",
          "subpath_matching with a query");
#undef CF

    fails(DT_FORMAT_CSV, "source,target,options,preserve_query_string\n/a,/b,query=keep,TRUE",
          "in:2:7: option 'query' given twice\n",
          "query= from the options column and preserve_query_string");
    fails(DT_FORMAT_CSV, "source,target,colour\n/a,/b,red\n/c,/d,blue\n",
          "in:1:15: unknown column 'colour' (known: source, target, status, options, "
          "preserve_query_string, include_subdomains, subpath_matching, preserve_path_suffix)\n",
          "unknown header name");
    is_str(R.rules, "/a /b 307\n/c /d 307\n", "rows are still read without that column");
    fails(DT_FORMAT_CSV, "source,source_url,target\n/a,/b,/c",
          "in:1:8: column 'source_url' given twice\n", "a column twice");
    fails(DT_FORMAT_CSV, "source,status\n/a,301\n/b,302\n",
          "in:1:1: the header has no target column (target or target_url)\n",
          "no target column: one error, rows not read");
    is_str(R.rules, "", "no rows converted");
    fails(DT_FORMAT_CSV, "source,target,status\n/a,/b\n/c,/d,301,x\n",
          "in:2:6: too few columns (2; the header has 3)\n"
          "in:3:11: too many columns (4; the header has 3)\n",
          "columns counted against the header");
}

/* ---- nginx -------------------------------------------------------------------------------- */

static void nginx_maps(void)
{
    converts(DT_FORMAT_NGINX_MAP, "map $uri $new { /old /new; }", "/old /new 307\n", "one entry");
    converts(DT_FORMAT_NGINX_MAP,
             "map $uri $new {\n"
             "    default   \"\";\n"
             "    hostnames;\n"
             "    volatile;\n"
             "    \"/old\"    \"/new\";\n"
             "    '/a'      '/b';\n"
             "    /old2     /new2;   # a comment\n"
             "    /gone     \"\";\n"
             "    /gone2    '';\n"
             "}\n",
             "/old /new 307\n/a /b 307\n/old2 /new2 307\n",
             "quotes, default, hostnames, volatile, empty values, comments");
    is_str(R.lines, "5 6 7", "each rule has its key's line");
    converts(DT_FORMAT_NGINX_MAP, "map $uri $new { default /fallback; /a /b; }", "/a /b 307\n",
             "a default with a value is skipped too");
    converts(DT_FORMAT_NGINX_MAP, "map $uri $new { ~^/item/(\\d+)$ /items/$1; }",
             "~^/item/(\\d+)$ /items/$1 307\n", "regex key, $1");
    converts(DT_FORMAT_NGINX_MAP, "map $uri $new { ~*^/Case/(.*) /x/$1; }",
             "~(?i)^/Case/(.*) /x/$1 307\n", "~* is case-insensitive");
    converts(DT_FORMAT_NGINX_MAP, "map $uri $new { \"~^/a/(?<n>\\d{2,3})$\" \"/b/${1}\"; }",
             "~^/a/(?<n>\\d{2,3})$ /b/$1 307\n", "quoted regex with braces; ${1}");
    converts(DT_FORMAT_NGINX_MAP, "map $uri $new { ~^/(a|b)/(.*)$ https://example.com/$2/$1$0; }",
             "~^/(a|b)/(.*)$ https://example.com/$2/$1$0 307\n", "captures up to $9 and $0");
    converts(DT_FORMAT_NGINX_MAP, "map $uri $new { \"/a\\\"b\\\\c\" /d; }", "/a%22b%5Cc /d 307\n",
             "escapes in quoted strings; $uri is decoded");
    converts(DT_FORMAT_NGINX_MAP,
             "map $uri $new { \"/about us\" /about; /caf\xc3\xa9 /cafe; "
             "/50% /half; /a?b /c; /x#y /z; }",
             "/about%20us /about 307\n/caf%C3%A9 /cafe 307\n/50%25 /half 307\n/a%3Fb /c 307\n"
             "/x%23y /z 307\n",
             "$uri keys are written as clients send them");
    converts(DT_FORMAT_NGINX_MAP, "map $document_uri $new { \"/a b\" /c; }", "/a%20b /c 307\n",
             "$document_uri is like $uri");
    converts(DT_FORMAT_NGINX_MAP,
             "map $uri $new { /downloads* /files; /shop/:slug /store; "
             "/v1.0/(x) /v2; }",
             "~^/downloads\\*$ /files 307\n~^/shop/:slug$ /store 307\n/v1.0/(x) /v2 307\n",
             "a literal '*' or ':name' becomes an anchored regex");
    converts(DT_FORMAT_NGINX_MAP,
             "map $uri $new { /a /at:noon; /b /b:1; /c https://example.com:8443/; }",
             "/a /at%3Anoon 307\n/b /b:1 307\n/c https://example.com:8443/ 307\n",
             "a colon before a letter in a value is encoded");
    converts(DT_FORMAT_NGINX_MAP, "map $uri $new { /a /price$; /b /x$-y; }",
             "/a /price$ 307\n/b /x$-y 307\n", "a '$' that starts no variable is kept");
    converts(DT_FORMAT_NGINX_MAP,
             "map $request_uri $new {\n"
             "    /index.php?page=contact /contact;\n"
             "    /index.php?page=home&lang=en /en/;\n"
             "    /plain /p;\n"
             "    /q? /r;\n"
             "    /star* /s;\n"
             "    ~^/item/(\\d+) /i/$1;\n"
             "}",
             "/index.php?page=contact /contact 307\n/index.php?page=home&lang=en /en/ 307\n"
             "/plain /p 307\n/q /r 307\n~^/star\\*$ /s 307\n~^/item/(\\d+) /i/$1 307\n",
             "$request_uri keys keep their query");
    converts(DT_FORMAT_NGINX_MAP, "map $uri $a { /a /b; }\nmap $request_uri $c { /c?x=1 /d; }",
             "/a /b 307\n/c?x=1 /d 307\n", "two maps");
    converts(DT_FORMAT_NGINX_MAP,
             "map_hash_bucket_size 128;\n"
             "include /etc/nginx/mime.types;\n"
             "server {\n"
             "    server_name example.com;   # map $uri $x { /no /no; }\n"
             "    location /map { return 301 /x; }\n"
             "    location ~ ^/a{2}$ { set $v \"{ } ;\"; }\n"
             "    if ($new) { return 301 $new; }\n"
             "    add_header X-Map 'map $uri $x {';\n"
             "}\n"
             "http { map $uri $new { /a /b; } }\n",
             "/a /b 307\n", "text outside maps is ignored, maps inside blocks are read");
    converts(DT_FORMAT_NGINX_MAP, "map $uri $new{/a /b;/c /d;}", "/a /b 307\n/c /d 307\n",
             "no blanks needed around braces and semicolons");
    run(DT_FORMAT_NGINX_MAP, "map $uri $new {\n\t/a /b; /c /d;\n  ~^/e /f;\n}", 0);
    is_str(R.lines, "2 2 3", "entries on one line share it");

    /* Errors: at the key of each entry. */
    fails(DT_FORMAT_NGINX_MAP,
          "map $host $new {\n  example.com /x;\n  /a /b;\n}\nmap $uri $n { /c /d; }",
          "in:1:5: a map on $host cannot be converted (only $uri, $request_uri and "
          "$document_uri)\n",
          "another source variable: named, its entries skipped");
    is_str(R.rules, "/c /d 307\n", "the next map is read");
    fails(DT_FORMAT_NGINX_MAP, "map \"$scheme://$host$request_uri\" $new { /a /b; }",
          "in:1:5: a map on $scheme://$host$request_uri cannot be converted (only $uri, "
          "$request_uri and $document_uri)\n",
          "a complex source value");
    fails(DT_FORMAT_NGINX_MAP, "map $uri { /a /b; }", "in:1:1: expected 'map $uri $variable {'\n",
          "a map without its result variable");
    fails(DT_FORMAT_NGINX_MAP,
          "map $uri $new {\n    include /etc/nginx/redirects.map;\n    /a /b;\n}",
          "in:2:5: include is not supported: inline the included file\n", "include");
    is_str(R.rules, "/a /b 307\n", "the rest of the map is read");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new {\n  /a $scheme://example.com$request_uri;\n}",
          "in:2:3: the nginx variable $scheme cannot be converted (only $1..$9 after a regular "
          "expression key)\n",
          "a variable in a value");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new { /a https://$host/b; }",
          "in:1:17: the nginx variable $host cannot be converted (only $1..$9 after a regular "
          "expression key)\n",
          "$host in a value");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new { /a /b${request_uri}; }",
          "in:1:17: the nginx variable $request_uri cannot be converted (only $1..$9 after a "
          "regular expression key)\n",
          "${name} in a value");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new { /a /b/$1; }",
          "in:1:17: $1 refers to a capture, but the key is not a regular expression\n",
          "$1 after an exact key");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new { /a new-page; }",
          "in:1:17: the target must be a path starting with '/' or an http(s) URL, not "
          "'new-page'\n",
          "a value that is not a URL");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new { /a \"/new page\"; }",
          "in:1:17: whitespace inside the target (write %20)\n", "whitespace in a value");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new { old /new; }",
          "in:1:17: the key 'old' is neither a path (starting with '/') nor a regular expression "
          "(~ or ~*)\n",
          "a key that is not a path");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new { \"\" /new; }", "in:1:17: empty key\n",
          "an empty key");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new { ~ /new; }", "in:1:17: empty regular expression\n",
          "an empty regex");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new { \"~^/a b\" /new; }",
          "in:1:17: whitespace or a control character inside the regular expression '^/a b' "
          "cannot be converted\n",
          "whitespace in a regex");
    fails(DT_FORMAT_NGINX_MAP, "map $request_uri $new { \"~^/p\\.php\\?id=(\\d+)\" /p/$1; }",
          "in:1:25: the regular expression '^/p\\.php\\?id=(\\d+)' matches the query ('\\?'), "
          "but detour matches regular expressions against the path only\n",
          "a $request_uri regex on the query");
    fails(DT_FORMAT_NGINX_MAP, "map $request_uri $new { \"/a b\" /c; }",
          "in:1:25: whitespace inside the key (write %20)\n", "whitespace in a $request_uri key");
    fails(DT_FORMAT_NGINX_MAP, "map $request_uri $new { /a#b /c; }",
          "in:1:25: a key may not hold a fragment ('#'): clients do not send it\n",
          "a fragment in a $request_uri key");
    fails(DT_FORMAT_NGINX_MAP, "map $request_uri $new { /s*?x=1 /c; }",
          "in:1:25: a key with a literal '*' or ':name' and a query cannot be converted\n",
          "a literal star and a query");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new { /a /b 301; }",
          "in:1:17: expected 'KEY VALUE;', got 3 words\n", "three words");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new { /a; }",
          "in:1:17: expected 'KEY VALUE;', got '/a' "
          "alone\n",
          "one word");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new { /a /b }",
          "in:1:17: missing ';' at the end of the entry\n", "missing ';'");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new { /a { /b; } /c /d; }",
          "in:1:20: unexpected '{' inside a map block\n", "a block inside a map");
    is_str(R.rules, "/c /d 307\n", "the map goes on after the inner block");
    fails(DT_FORMAT_NGINX_MAP, "\n\n  map $uri $new {\n /a /b;\n",
          "in:3:3: the map block is not "
          "closed (a '}' is missing)\n",
          "an unclosed map");
    is_str(R.rules, "/a /b 307\n", "its entries are still converted");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new {\n /a \"/b;\n}\n",
          "in:2:5: unterminated string (it needs a closing \")\n", "an unterminated string");
    fails(DT_FORMAT_NGINX_MAP, "map $uri $new {\n\t/a\t'/b c';\n\t/d\t/e;\n\t/f\t$host;\n}",
          "in:2:2: whitespace inside the target (write %20)\n"
          "in:4:2: the nginx variable $host cannot be converted (only $1..$9 after a regular "
          "expression key)\n",
          "every entry's error is reported, at its key");
    is_str(R.rules, "/d /e 307\n", "the good entry is converted");
}

/* ---- Netlify ------------------------------------------------------------------------------ */

static void netlify(void)
{
    converts(DT_FORMAT_NETLIFY, "/old /new", "/old /new 301\n", "301 by default");
    converts(DT_FORMAT_NETLIFY, "/a /b 302\n/c /d 303\n/e /f 307\n/g /h 308\n/i /j 301",
             "/a /b 302\n/c /d 303\n/e /f 307\n/g /h 308\n/i /j 301\n", "every redirect status");
    converts(DT_FORMAT_NETLIFY, "/a /b 302!\n/c /d 301!", "/a /b 302\n/c /d 301\n",
             "the force flag '!' is dropped");
    converts(DT_FORMAT_NETLIFY, "/blog/*   /news/:splat", "/blog/* /news/:splat 301\n", "splat");
    converts(DT_FORMAT_NETLIFY, "/news/:year/:month/:slug  /blog/:year/:month/:slug  301",
             "/news/:year/:month/:slug /blog/:year/:month/:slug 301\n", "placeholders");
    converts(DT_FORMAT_NETLIFY, "/store id=:id  /blog/:id  301", "/store?id=:id /blog/:id 301\n",
             "a query parameter");
    converts(DT_FORMAT_NETLIFY, "/articles id=:id tag=:tag /posts/:tag/:id",
             "/articles?id=:id&tag=:tag /posts/:tag/:id 301\n", "two query parameters");
    converts(DT_FORMAT_NETLIFY, "/search q=detour /found", "/search?q=detour /found 301\n",
             "a literal query value");
    converts(DT_FORMAT_NETLIFY, "https://Old.Example.com/* https://example.com/:splat 301!",
             "https://old.example.com/* https://example.com/:splat 301\n", "a domain redirect");
    converts(DT_FORMAT_NETLIFY, "http://old.example.com https://example.com",
             "http://old.example.com/ https://example.com 301\n", "a host alone is its root");
    converts(DT_FORMAT_NETLIFY, "/caf\xc3\xa9 /\xc3\xa9t\xc3\xa9",
             "/caf%C3%A9 /%C3%A9t%C3%A9 301\n", "non-ASCII percent-encoded");
    run(DT_FORMAT_NETLIFY,
        "# comment\n\n   \n/a /b # trailing comment\r\n\t/c\t/d\t302\r\n  # indented\n/e /f#frag\n",
        0);
    is_str(R.rules, "/a /b 301\n/c /d 302\n/e /f#frag 301\n",
           "comments, blank lines, tabs, CRLF, '#' inside a target");
    is_str(R.lines, "4 5 7", "Netlify line numbers");
    is_int(R.rc, 0, "no errors");

    fails(DT_FORMAT_NETLIFY, "/* /app 200",
          "in:1:9: Netlify rewrites (200) and custom pages "
          "(404, 410, ...) are not redirects\n",
          "a rewrite (200)");
    fails(DT_FORMAT_NETLIFY, "/*      /app 200!",
          "in:1:14: Netlify rewrites (200) and custom "
          "pages (404, 410, ...) are not redirects\n",
          "a forced rewrite");
    fails(DT_FORMAT_NETLIFY, "/api/*  https://api.example.com/:splat  200",
          "in:1:41: Netlify rewrites (200) and custom pages (404, 410, ...) are not redirects\n",
          "a proxy (200 to another site)");
    fails(DT_FORMAT_NETLIFY, "/old /404.html 404",
          "in:1:16: Netlify rewrites (200) and custom "
          "pages (404, 410, ...) are not redirects\n",
          "a custom 404 page");
    fails(DT_FORMAT_NETLIFY, "/gone /gone.html 410",
          "in:1:18: Netlify rewrites (200) and custom "
          "pages (404, 410, ...) are not redirects\n",
          "410");
    fails(DT_FORMAT_NETLIFY, "/a /b 304",
          "in:1:7: status 304 is not a redirect status (301, 302, 303, 307 or 308)\n",
          "a 3xx that is no redirect");
    fails(DT_FORMAT_NETLIFY, "/a /b 30x", "in:1:7: '30x' is not a status\n", "not a number");
    fails(DT_FORMAT_NETLIFY, "/a /b 301!!", "in:1:7: '301!!' is not a status\n", "two '!'");
    fails(DT_FORMAT_NETLIFY, "/  /en  302  Language=en",
          "in:1:14: conditions are not supported: 'Language=en'\n", "Language condition");
    fails(DT_FORMAT_NETLIFY, "/  /us  Country=us,ca",
          "in:1:9: conditions are not supported: 'Country=us,ca'\n",
          "a condition without a status");
    fails(DT_FORMAT_NETLIFY, "/admin/* /login 302! Role=admin",
          "in:1:22: conditions are not supported: 'Role=admin'\n", "Role condition");
    fails(DT_FORMAT_NETLIFY, "/beta /new 302 Cookie=beta",
          "in:1:16: conditions are not supported: 'Cookie=beta'\n", "Cookie condition");
    fails(DT_FORMAT_NETLIFY, "/a /b 301 extra",
          "in:1:11: unexpected 'extra' at the end of the "
          "rule\n",
          "a stray word");
    fails(DT_FORMAT_NETLIFY, "/lonely", "in:1:8: missing target after '/lonely'\n",
          "missing target");
    fails(DT_FORMAT_NETLIFY, "/store id=:id", "in:1:14: missing target after 'id=:id'\n",
          "missing target after a query parameter");
    fails(DT_FORMAT_NETLIFY, "/a new-page",
          "in:1:4: expected a query parameter KEY=VALUE or the "
          "target, not 'new-page'\n",
          "a target that is not a URL");
    fails(DT_FORMAT_NETLIFY, "/a =x /b",
          "in:1:4: expected a query parameter KEY=VALUE or the "
          "target, not '=x'\n",
          "a query parameter without a name");
    fails(DT_FORMAT_NETLIFY, "old /new",
          "in:1:1: the source must be a path starting with '/' or "
          "an http(s) URL, not 'old'\n",
          "a source that is not a path");
    fails(DT_FORMAT_NETLIFY, "example.com/a /new",
          "in:1:1: the source must be a path starting "
          "with '/' or an http(s) URL, not 'example.com/a'\n",
          "no bare host in Netlify");
    fails(DT_FORMAT_NETLIFY, "/a/*/b /c", "in:1:4: '*' may only stand at the end of the source\n",
          "a star inside the source");
    fails(DT_FORMAT_NETLIFY, "/a https:// 301", "in:1:4: the target 'https://' has no host\n",
          "a target without host");
    fails(DT_FORMAT_NETLIFY, "/\xc3\xa9t\xc3\xa9\x01 /b",
          "in:1:5: control character inside the source\n", "control character, in characters");
    fails(DT_FORMAT_NETLIFY, "/a /b\x7f", "in:1:6: control character inside the target\n",
          "DEL in a target");

    fails(DT_FORMAT_NETLIFY, "/a /b\n/c /d 200\n/e\n/f /g\n/h /i Country=fr\n",
          "in:2:7: Netlify rewrites (200) and custom pages (404, 410, ...) are not redirects\n"
          "in:3:3: missing target after '/e'\n"
          "in:5:7: conditions are not supported: 'Country=fr'\n",
          "every bad line reported");
    is_str(R.rules, "/a /b 301\n/f /g 301\n", "good lines converted");
}

/* ---- whole files -------------------------------------------------------------------------- */

static void sample_file(const char *input, enum dt_rule_format f, const char *lines)
{
    char path[256], expected_path[256];
    snprintf(path, sizeof(path), "data/import/%s", input);
    snprintf(expected_path, sizeof(expected_path), "data/import/%s.expected", input);
    size_t len, elen;
    char *text = slurp(path, &len), *expected = slurp(expected_path, &elen);
    ok(text && expected, path);
    if (!text || !expected) {
        free(text);
        free(expected);
        return;
    }
    is_int(dt_rule_format_guess(path), f, "its format is guessed from its name");
    unsigned before = streams.failures;
    run_len(f, text, len, 0);
    ok(streams.failures == before,
       "issue 14: fed in pieces at every cut, the same rules, lines and messages");
    is_int(R.rc, 0, "converts without errors");
    is_str(R.errors, "", "no error messages");
    is_str(R.rules, expected, expected_path);
    is_str(R.lines, lines, "input lines of the rules");
    free(text);
    free(expected);
}

static void sample_files(void)
{
    sample_file("sample.csv", DT_FORMAT_CSV, "2 3 4 5 6 7 9 10 11 14");
    sample_file("cloudflare.csv", DT_FORMAT_CSV, "2 3 4 5 6 7 8");
    sample_file("sample.map", DT_FORMAT_NGINX_MAP, "10 11 12 13 15 16 19 20 25 26 27");
    sample_file("_redirects", DT_FORMAT_NETLIFY, "2 3 4 5 6 7 10 11 13 14");
}

/* ---- streams (issue 14: detour check streams its input) ----------------------------------- */

/* dt_import_stream_whole on a fresh stream. */
static size_t whole_of(enum dt_rule_format f, const char *text, bool at_eof)
{
    struct dt_import_stream *s = dt_import_stream_new(f, "in", 0);
    size_t n = dt_import_stream_whole(s, dt_str_make(text, strlen(text)), at_eof);
    dt_import_stream_free(s);
    return n;
}

static void stream_whole(void)
{
    is_int(whole_of(DT_FORMAT_CSV, "/a,\"b\nc\"\n/d,/e", false), 9,
           "issue 14: CSV: a line break inside quotes ends no record, the last line waits");
    is_int(whole_of(DT_FORMAT_CSV, "/a,\"b\nc\"\n/d,/e", true), 14, "at the end, all is whole");
    is_int(whole_of(DT_FORMAT_CSV, "/a,\"b\n", false), 0, "an open quote: nothing whole");
    is_int(whole_of(DT_FORMAT_CSV, "/a,/b\r", false), 0, "CSV: no cut between CR and LF");
    is_int(whole_of(DT_FORMAT_CSV, "/a,/b\r\n/c", false), 7, "CSV: a cut after CR LF");
    is_int(whole_of(DT_FORMAT_CSV, "# comm", false), 0, "CSV: an unfinished comment waits");
    is_int(whole_of(DT_FORMAT_CSV, "# c\n# d", false), 4, "CSV: a finished comment is whole");
    is_int(whole_of(DT_FORMAT_CSV, "# c\n\n  ", false), 5, "CSV: so are blank lines");
    is_int(whole_of(DT_FORMAT_CSV, "# c\r", false), 0, "CSV: a comment's CR waits for its LF");
    is_int(whole_of(DT_FORMAT_CSV, "\"/open\n/a,/b\n", false), 0,
           "CSV: an unterminated quote is whole only at the end");
    is_int(whole_of(DT_FORMAT_CSV, "\"/a\"x,/b\n/c,/d", false), 9,
           "CSV: a malformed record ends at its line break");
    is_int(whole_of(DT_FORMAT_CSV, "\xEF\xBB\xBF\"/a\n\",/b\n", false), 12,
           "CSV: a byte order mark at the start does not hide the quote after it");
    is_int(whole_of(DT_FORMAT_CSV, "", false), 0, "CSV: empty");
    is_int(whole_of(DT_FORMAT_NETLIFY, "/a /b\n/c", false), 6, "Netlify: lines");
    is_int(whole_of(DT_FORMAT_NETLIFY, "/a /b\r", false), 0, "Netlify: no cut between CR and LF");
    is_int(whole_of(DT_FORMAT_DETOUR, "/a /b\n\n/c /d\n/e", false), 13, "detour: lines");
    is_int(whole_of(DT_FORMAT_NGINX_MAP, "map $uri $x { /a /b; }\n", false), 0,
           "nginx: nothing before the end");
    is_int(whole_of(DT_FORMAT_NGINX_MAP, "map $uri $x { /a /b; }\n", true), 23,
           "nginx: the whole file at the end");

    /* After the first piece, the mark is no longer skipped. */
    struct dt_import_stream *s = dt_import_stream_new(DT_FORMAT_CSV, "in", 0);
    struct dt_import im;
    struct dt_errors errs;
    dt_import_init(&im);
    dt_errors_init(&errs);
    is_int(dt_import_stream_feed(s, DT_STR("source,target\n"), 1, &im, &errs), 0, "a header");
    is_int(dt_import_stream_whole(s, DT_STR("\xEF\xBB\xBF\"/a\n\",/b\n"), false), 7,
           "a mark later in the input is text");
    is_int(dt_import_stream_feed(s, DT_STR("/a,/b c\n/x,/y\n"), 1000, &im, &errs), DT_ESYNTAX,
           "a later piece with an error");
    is_str(errs.text.ptr, "in:1000:6: whitespace inside the target (write %20)\n",
           "its message names the input's line");
    ok(im.n == 1 && im.lines[0].line == 1001 && !strcmp(im.lines[0].text, "/x /y 307"),
       "its rule has the input's line");
    is_int(dt_import_stream_feed(s, DT_STR(""), 1002, &im, &errs), 0, "an empty piece");
    dt_import_stream_free(s);

    ok(dt_import_stream_new(DT_FORMAT_CSV, "in", 200) == NULL, "a bad status: no stream");
    ok(dt_import_stream_new((enum dt_rule_format)9, "in", 0) == NULL, "a bad format: no stream");
    dt_import_stream_free(NULL);
    s = dt_import_stream_new(DT_FORMAT_NETLIFY, NULL, 0);
    is_int(dt_import_stream_feed(s, DT_STR("/a\n"), 1, &im, &errs), DT_ESYNTAX, "NULL name");
    ok(strstr(errs.text.ptr, "\n-:1:3: missing target") != NULL, "a NULL name reads '-'");
    dt_import_stream_free(s);
    if (SIZE_MAX > DT_IMPORT_MAX_TEXT) {
        /* Only the length is looked at: nothing is read past the real bytes. */
        s = dt_import_stream_new(DT_FORMAT_CSV, "big", 0);
        dt_errors_dispose(&errs);
        dt_errors_init(&errs);
        is_int(dt_import_stream_feed(s, DT_STR("/a,/b\n"), 1, &im, &errs), 0, "a first piece");
        is_int(
            dt_import_stream_feed(s, dt_str_make("/c,/d\n", DT_IMPORT_MAX_TEXT - 5), 2, &im, &errs),
            DT_ELIMIT, "past DT_IMPORT_MAX_TEXT bytes in all: DT_ELIMIT");
        is_int(dt_import_stream_feed(s, DT_STR("/e,/f\n"), 2, &im, &errs), DT_ELIMIT,
               "and for every piece after");
        is_str(errs.text.ptr, "big: larger than 4294967295 bytes\n", "reported once");
        dt_import_stream_free(s);
    }
    dt_import_dispose(&im);
    dt_errors_dispose(&errs);
}

/* Inputs whose records, state and line ends make cuts tricky: each converts alike whole and
 * fed in pieces cut wherever dt_import_stream_whole allows. */
static void stream_tricky(void)
{
    static const struct {
        enum dt_rule_format f;
        const char *text;
        const char *name;
    } cases[] = {
        {DT_FORMAT_CSV, "source,target,status\n/a,/b,301\n/c,/d\n/e,/f,302,x\n/g h,/i,308\n",
         "CSV header, then rows with errors on later lines"},
        {DT_FORMAT_CSV, "source,target,colour\n/a,/b,red\n/c,/d,blue\n",
         "CSV header with an unknown column"},
        {DT_FORMAT_CSV, "source,options,status,target\n/a,cache=5,302,/b\n/c,x,301,/d\n",
         "CSV columns by name in another order"},
        {DT_FORMAT_CSV, "source,status\n\"/x\"y,1\n/a,301\n\"/open\n/b,302\n",
         "CSV header without a target: the first row stops everything"},
        {DT_FORMAT_CSV,
         "/a,/b,301,\"query=drop\ncache=60\"\n/c,/d\n\"/e\",\"/f\",\"\",\"\r\n\r\n\"\n/g,/h",
         "CSV quoted fields spanning lines"},
        {DT_FORMAT_CSV, "/a,/b,301,\"query=drop\n  colour=red\"\n/c,/d e",
         "CSV errors inside and after a multi-line field"},
        {DT_FORMAT_CSV, "source,target\r\n/a,/b\r\n\r\n/c,\"/d\r\ne\"\r\n/f,/g\r\n",
         "CSV with CRLF, and a CRLF inside quotes"},
        {DT_FORMAT_CSV, "\xEF\xBB\xBF\"/a,\n/b\",/c\n/d,/e\n",
         "CSV byte order mark before a quoted field"},
        {DT_FORMAT_CSV, "\xEF\xBB\xBFsource,target\r\n/a,/b\r\n/c,/d e\r\n",
         "CSV byte order mark before a header"},
        {DT_FORMAT_CSV, "\xEF\xBB\xBF", "CSV byte order mark alone"},
        {DT_FORMAT_CSV, "\xEF\xBB\xBF\n/a,/b\n", "CSV byte order mark on a blank line"},
        {DT_FORMAT_CSV, "\xEF\xBB", "CSV a cut byte order mark"},
        {DT_FORMAT_CSV, "/a,/b\n\xEF\xBB\xBF/c,/d\n", "CSV a byte order mark on a later line"},
        {DT_FORMAT_NETLIFY, "/a /b\n\xEF\xBB\xBF/c /d\n", "Netlify a byte order mark later"},
        {DT_FORMAT_DETOUR, "\xEF\xBB\xBF/a /b\n\xEF\xBB\xBF/c /d\n", "detour byte order marks"},
        {DT_FORMAT_CSV,
         "example.com/old,https://example.com/new,301,TRUE,FALSE,FALSE,FALSE\n/plain,/x,302,"
         "TRUE\n/opts,/y,302,query=drop\nexample.com/docs,https://docs.example.com,301,FALSE,"
         "TRUE,TRUE,TRUE\n/bad,/z,301,maybe,,,\n/c,/d\n",
         "CSV Cloudflare rows without a header, among others"},
        {DT_FORMAT_CSV, "# c\n\n  \n,,,\n\"\",\"\"\n/a,/b\n# last comment without newline",
         "CSV comments, blank and empty rows"},
        {DT_FORMAT_CSV, "/a,/b\n/c,/d\n\"/e,/f\n/g,/h\n", "CSV unterminated quote on a late line"},
        {DT_FORMAT_CSV, "\"/a\"x,/b\r\n/c\"d,/e\r\n/f,/g\r\n", "CSV malformed records, CRLF"},
        {DT_FORMAT_CSV, "/a,/b\r/c,/d\n/e,/f\r", "CSV a CR without LF"},
        {DT_FORMAT_CSV, "", "CSV empty"},
        {DT_FORMAT_CSV, "source,target", "CSV a header alone, no newline"},
        {DT_FORMAT_CSV, "/a\nsource,target\n", "CSV a bad first row, then a header-like row"},
        {DT_FORMAT_CSV, "/x,/y\n/caf\xc3\xa9,/b c\n", "CSV columns in characters, later line"},
        {DT_FORMAT_CSV, "  \n\t\n/a,/b\n   ", "CSV blanks at the end"},
        {DT_FORMAT_NETLIFY,
         "# comment\n\n/a /b\r\n/c /d 200\r\n  /e\t/f  302!\n/g h=1 /i\n/j\n/k /l Country=fr",
         "Netlify with errors, CRLF, no final newline"},
        {DT_FORMAT_NETLIFY, "\xEF\xBB\xBF/a /b\r\n\r\n", "Netlify byte order mark and CRLF"},
        {DT_FORMAT_NETLIFY, "", "Netlify empty"},
        {DT_FORMAT_DETOUR, "  /a /b 301  \r\n# comment\n\n\t/c   /d\n/e\x01 /f\n/g /h",
         "detour lines"},
        {DT_FORMAT_NGINX_MAP,
         "map $uri $new {\n /a /b;\n /c \"/d\ne\";\n}\nmap $host $x { /y /z; }\n", "nginx maps"},
        {DT_FORMAT_NGINX_MAP, "\n\n  map $uri $new {\n /a /b;\n", "nginx unclosed map"},
    };
    for (size_t i = 0; i < DT_ARRAY_LEN(cases); i++) {
        char name[128];
        snprintf(name, sizeof(name), "issue 14: %s: streamed alike", cases[i].name);
        for (int status = 0; status <= 308; status += 308)
            ok(streams_alike(cases[i].f, cases[i].text, strlen(cases[i].text), status), name);
    }
}

/* A long CSV list, made here: streamed through readers of a few sizes, it converts alike and
 * no reader holds more than its buffer and a record. */
static void stream_long(void)
{
    struct dt_buf text;
    dt_buf_init(&text);
    dt_buf_appendf(&text, "%s", "\xEF\xBB\xBFsource,target,status,options\r\n");
    for (unsigned i = 0; i < 20000; i++) {
        switch (i % 10) {
        case 3:
            dt_buf_appendf(&text, "/q%u,\"/multi\nline\",301,\n", i);
            break;
        case 5:
            dt_buf_appendf(&text, "\"/quoted,%u\",/t%u,,\"cache=60;\r\nquery=drop\"\r\n", i, i);
            break;
        case 7:
            dt_buf_appendf(&text, "# comment %u\n\n", i);
            break;
        case 9:
            dt_buf_appendf(&text, "/bad%u,/t,200\n", i);
            break;
        default:
            dt_buf_appendf(&text, "/s%u,/t%u,%s\r\n", i, i, i % 2 ? "308" : "");
        }
    }
    struct dt_buf want, got;
    dt_buf_init(&want);
    dt_buf_init(&got);
    whole_outcome(DT_FORMAT_CSV, text.ptr, text.len, 0, &want);
    static const size_t chunks[] = {1, 13, 64, 4096, 65536};
    for (size_t i = 0; i < DT_ARRAY_LEN(chunks); i++) {
        got.len = 0;
        const char *why = NULL;
        bool good =
            reader_outcome(DT_FORMAT_CSV, text.ptr, text.len, 0, chunks[i], false, &got, &why);
        char name[96];
        snprintf(name, sizeof(name), "issue 14: 20,000 CSV rows through a %zu-byte reader",
                 chunks[i]);
        ok(good && !strcmp(want.ptr, got.ptr), name);
        ok(reader_held <= chunks[i] + 64, "it held at most its buffer and a record");
    }
    dt_buf_dispose(&want);
    dt_buf_dispose(&got);
    dt_buf_dispose(&text);
}

/* A fenced block of a Markdown text. */
struct fence {
    char lang[16];    /* its info string ("csv"), empty if longer */
    const char *open; /* where its opening fence starts */
    const char *body; /* the lines between the fences, each with its newline */
    size_t len;
};

/* Finds the next fenced block from *p, whose fences start lines; moves *p past it. */
static bool next_fence(const char **p, struct fence *f)
{
    const char *s = *p;
    for (;;) {
        const char *open = strstr(s, "```");
        if (!open)
            return false;
        s = open + 3;
        if (open != *p && open[-1] != '\n')
            continue;
        const char *eol = strchr(s, '\n'), *close = eol ? strstr(eol, "\n```") : NULL;
        if (!close)
            return false;
        size_t n = (size_t)(eol - s);
        f->lang[0] = '\0';
        if (n < sizeof(f->lang)) {
            memcpy(f->lang, s, n);
            f->lang[n] = '\0';
        }
        f->open = open;
        f->body = eol + 1;
        f->len = (size_t)(close + 1 - f->body);
        const char *after = strchr(close + 1, '\n');
        *p = after ? after + 1 : close + 4;
        return true;
    }
}

/* Every ```csv, ```nginx or ```netlify block of docs/import.md is followed (after blank lines
 * only) by a ```rules block, and converts with the format's default status to exactly it. */
static void doc_examples(void)
{
    size_t len;
    char *doc = slurp("../docs/import.md", &len);
    ok(doc != NULL, "docs/import.md is readable");
    if (!doc)
        return;
    int examples = 0;
    const char *p = doc;
    struct fence ex, rules;
    while (next_fence(&p, &ex)) {
        enum dt_rule_format f;
        if (dt_rule_format_parse(ex.lang, &f) != 0 || f == DT_FORMAT_DETOUR)
            continue;
        char name[64];
        snprintf(name, sizeof(name), "docs/import.md example %d (%s)", ++examples, ex.lang);
        const char *after = p;
        if (!next_fence(&p, &rules) || strcmp(rules.lang, "rules") != 0 ||
            strspn(after, "\n") != (size_t)(rules.open - after)) {
            ok(0, name);
            printf("#   not followed by a ```rules block\n");
            break;
        }
        char *want = malloc(rules.len + 1);
        if (!want)
            break;
        memcpy(want, rules.body, rules.len);
        want[rules.len] = '\0';
        run_len(f, ex.body, ex.len, 0);
        is_str(R.rules, want, name);
        if (R.errors[0])
            printf("#   errors:\n#   %s", R.errors);
        free(want);
    }
    ok(examples >= 6, "docs/import.md has its examples");
    free(doc);
}

int main(void)
{
    format_names();
    api();
    csv_positional();
    csv_cloudflare_positional();
    csv_rfc4180();
    csv_errors();
    csv_header();
    nginx_maps();
    netlify();
    sample_files();
    doc_examples();
    stream_whole();
    stream_tricky();
    stream_long();
    ok(streams.failures == 0, "issue 14: every input above converts alike fed in pieces");
    printf("#   %u inputs streamed, %u differed\n", streams.inputs, streams.failures);
    return done_testing();
}
