/* fuzz_import: any bytes as a CSV file, an nginx map or a Netlify _redirects file (the
 * first byte picks which, the status given to entries without one, and a reader's buffer
 * size) must convert or be refused with messages, never crash; every rule line a conversion
 * writes is one line (no CR, LF or NUL) that the rule codec reads back, since the converters
 * write through it; and fed in pieces through that reader (issue 14: detour check streams
 * its input), the conversion gives the same rules, lines and messages as whole. */
#include "rules/import.h"
#include "rules/rules.h"

#include <stdlib.h>

/* Converts text through a stream as a reader with a buffer of chunk bytes would: read chunk
 * more bytes (as many as it holds when that is more: a full buffer doubles), feed the whole
 * records held, keep the rest. Aborts on a cut that is past the text or inside a line (so
 * never between a CR and its LF). */
static int streamed(enum dt_rule_format f, struct dt_str text, int status, size_t chunk,
                    struct dt_import *im, struct dt_errors *errs)
{
    struct dt_import_stream *s = dt_import_stream_new(f, "fuzz", status);
    if (!s)
        abort();
    size_t start = 0, end = 0;
    uint32_t line = 1;
    int rc = 0;
    for (;;) {
        size_t more = end - start > chunk ? end - start : chunk;
        end += text.len - end < more ? text.len - end : more;
        bool eof = end == text.len;
        size_t avail = end - start;
        size_t w = dt_import_stream_whole(s, dt_str_make(text.ptr + start, avail), eof);
        if (w > avail || (eof && w != avail) ||
            (w > 0 && w < avail && text.ptr[start + w - 1] != '\n'))
            abort();
        int r = dt_import_stream_feed(s, dt_str_make(text.ptr + start, w), line, im, errs);
        if (r != 0 && rc == 0)
            rc = r;
        for (size_t i = start; i < start + w; i++)
            line += text.ptr[i] == '\n';
        start += w;
        if (eof)
            break;
    }
    dt_import_stream_free(s);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const enum dt_rule_format formats[] = {DT_FORMAT_CSV, DT_FORMAT_NGINX_MAP,
                                                  DT_FORMAT_NETLIFY};
    static const int statuses[] = {0, 301, 302, 303, 307, 308};
    static const size_t chunks[] = {1, 2, 3, 4, 5, 7, 8, 11, 16, 29, 64, 100, 256, 4096, 1};
    enum dt_rule_format f = formats[data[0] % 3];
    int status = statuses[(data[0] / 3) % 6];
    size_t chunk = chunks[data[0] / 18];
    struct dt_str text = dt_str_make((const char *)data + 1, size - 1);
    struct dt_import im;
    struct dt_errors errs;
    dt_import_init(&im);
    dt_errors_init(&errs);
    int rc = dt_import_convert(f, "fuzz", text, status, &im, &errs);
    if (rc != 0 && rc != DT_ESYNTAX && rc != DT_ELIMIT)
        abort();
    if (rc == DT_ESYNTAX && errs.count == 0)
        abort(); /* a refusal says why */
    for (size_t i = 0; i < im.n; i++) {
        const char *t = im.lines[i].text;
        if (strpbrk(t, "\r\n"))
            abort();
        struct dt_rule_spec s;
        struct dt_diag d;
        if (dt_rule_parse_line(dt_str_make(t, strlen(t)), &s, &d) != 1)
            abort(); /* the converters write what the codec reads */
    }

    struct dt_import sim;
    struct dt_errors serrs;
    dt_import_init(&sim);
    dt_errors_init(&serrs);
    if (streamed(f, text, status, chunk, &sim, &serrs) != rc || sim.n != im.n ||
        serrs.count != errs.count || serrs.text.len != errs.text.len ||
        (errs.text.len && memcmp(serrs.text.ptr, errs.text.ptr, errs.text.len)))
        abort();
    for (size_t i = 0; i < im.n; i++)
        if (sim.lines[i].line != im.lines[i].line || strcmp(sim.lines[i].text, im.lines[i].text))
            abort();
    dt_import_dispose(&sim);
    dt_errors_dispose(&serrs);
    dt_import_dispose(&im);
    dt_errors_dispose(&errs);
    return 0;
}
