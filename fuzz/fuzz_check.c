/* fuzz_check: any bytes as a file given to `detour check` (the first byte picks the format
 * and whether --base is given) must be read to its end without a crash, and every URL it
 * yields must be an absolute http(s) URL that parses, with an expected target (when it has
 * one) that parses too and a redirect status, on a line of the file. */
#include "cli/check.h"
#include "rules/import.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!devnull) {
        devnull = fopen("/dev/null", "w");
        dt_log_set_level(DT_LOG_ERROR);
    }
    static const char *const formats[] = {"detour", "csv", "nginx", "netlify"};
    int fd = memfd_create("fuzz_check", 0);
    if (fd < 0)
        abort();
    size_t off = 0;
    while (off < size - 1) {
        ssize_t n = write(fd, data + 1 + off, size - 1 - off);
        if (n <= 0)
            abort();
        off += (size_t)n;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    char *files[] = {path};
    uint32_t lines = 1;
    for (size_t i = 1; i < size; i++)
        lines += data[i] == '\n';
    struct check_input_options o = {
        .format = formats[data[0] & 3],
        .base = data[0] & 4 ? "http://base.example:8080" : NULL,
        .now = 1800000000,
        .diag = devnull,
    };
    struct check_input *in;
    if (check_input_new(&in, files, 1, &o) != 0)
        abort();
    struct check_entry *e;
    while (check_input_next(in, &e) == 1) {
        struct dt_url u;
        if (dt_url_parse(dt_str_make(e->url, strlen(e->url)), &u, NULL) != 0 ||
            (!dt_str_ieq(u.scheme, "http") && !dt_str_ieq(u.scheme, "https")) || !u.host.len)
            abort();
        if (e->expect && dt_url_parse(dt_str_make(e->expect, strlen(e->expect)), &u, NULL) != 0)
            abort();
        if (e->expect && !dt_http_is_redirect(e->item.expect_status))
            abort();
        if (e->line < 1 || e->line > lines || e->item.url != e->url || e->item.ud != e)
            abort();
        check_entry_free(e);
    }
    check_input_free(in);
    close(fd);
    return 0;
}
