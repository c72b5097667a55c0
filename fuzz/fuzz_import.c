/* fuzz_import: any bytes as a CSV file, an nginx map or a Netlify _redirects file (the
 * first byte picks which, and the status given to entries without one) must convert or be
 * refused with messages, never crash; every rule line a conversion writes is one line (no
 * CR, LF or NUL) that the rule codec reads back, since the converters write through it. */
#include "rules/import.h"
#include "rules/rules.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const enum dt_rule_format formats[] = {DT_FORMAT_CSV, DT_FORMAT_NGINX_MAP,
                                                  DT_FORMAT_NETLIFY};
    static const int statuses[] = {0, 301, 302, 303, 307, 308};
    enum dt_rule_format f = formats[data[0] % 3];
    int status = statuses[(data[0] / 3) % 6];
    struct dt_import im;
    struct dt_errors errs;
    dt_import_init(&im);
    dt_errors_init(&errs);
    int rc = dt_import_convert(f, "fuzz", dt_str_make((const char *)data + 1, size - 1), status,
                               &im, &errs);
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
    dt_import_dispose(&im);
    dt_errors_dispose(&errs);
    return 0;
}
