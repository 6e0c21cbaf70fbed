/* bench_report: rows of named fields written as a markdown table or as a
 * JSON array of objects (see bench_common.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

enum { MAX_FIELDS = 48, MAX_HIDDEN = 32, KEY_LEN = 40, STR_LEN = 64 };

typedef enum { F_STR, F_INT, F_NUM, F_BOOL, F_MEAN_SD } field_kind;

typedef struct field {
    char key[KEY_LEN];
    field_kind kind;
    char str[STR_LEN];
    long long i;
    double d, sd;
    int decimals;
} field;

typedef struct row {
    field fields[MAX_FIELDS];
    int n;
} row;

typedef struct hidden {
    char key[KEY_LEN];
    bench_format in;
} hidden;

struct bench_report {
    row *rows;
    size_t n_rows, cap_rows;
    hidden hide[MAX_HIDDEN];
    int n_hide;
    int failed; /* a put could not be stored */
};

bench_report *bench_report_new(void)
{
    return calloc(1, sizeof(bench_report));
}

void bench_report_free(bench_report *r)
{
    if (!r)
        return;
    free(r->rows);
    free(r);
}

void bench_report_row(bench_report *r)
{
    if (r->n_rows == r->cap_rows) {
        size_t cap = r->cap_rows ? 2 * r->cap_rows : 16;
        row *rows = realloc(r->rows, cap * sizeof *rows);
        if (!rows) {
            r->failed = 1;
            return;
        }
        r->rows = rows;
        r->cap_rows = cap;
    }
    r->rows[r->n_rows++].n = 0;
}

static field *put(bench_report *r, const char *key, field_kind kind)
{
    if (r->n_rows == 0 || r->rows[r->n_rows - 1].n == MAX_FIELDS) {
        r->failed = 1;
        return NULL;
    }
    row *w = &r->rows[r->n_rows - 1];
    field *f = &w->fields[w->n++];
    memset(f, 0, sizeof *f);
    snprintf(f->key, sizeof f->key, "%s", key);
    f->kind = kind;
    return f;
}

void bench_put_str(bench_report *r, const char *key, const char *value)
{
    field *f = put(r, key, F_STR);
    if (f)
        snprintf(f->str, sizeof f->str, "%s", value ? value : "");
}

void bench_put_int(bench_report *r, const char *key, long long value)
{
    field *f = put(r, key, F_INT);
    if (f)
        f->i = value;
}

void bench_put_num(bench_report *r, const char *key, double value, int decimals)
{
    field *f = put(r, key, F_NUM);
    if (f) {
        f->d = value;
        f->decimals = decimals;
    }
}

void bench_put_bool(bench_report *r, const char *key, int value)
{
    field *f = put(r, key, F_BOOL);
    if (f)
        f->i = value != 0;
}

void bench_put_mean_sd(bench_report *r, const char *key, double mean, double sd, int decimals)
{
    field *f = put(r, key, F_MEAN_SD);
    if (f) {
        f->d = mean;
        f->sd = sd;
        f->decimals = decimals;
    }
}

void bench_report_hide(bench_report *r, const char *key, bench_format in)
{
    if (r->n_hide == MAX_HIDDEN) {
        r->failed = 1;
        return;
    }
    snprintf(r->hide[r->n_hide].key, KEY_LEN, "%s", key);
    r->hide[r->n_hide++].in = in;
}

static int is_hidden(const bench_report *r, const char *key, bench_format in)
{
    for (int i = 0; i < r->n_hide; i++)
        if (r->hide[i].in == in && strcmp(r->hide[i].key, key) == 0)
            return 1;
    return 0;
}

static const field *find(const row *w, const char *key)
{
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->fields[i].key, key) == 0)
            return &w->fields[i];
    return NULL;
}

/* ---- markdown ---------------------------------------------------------------- */

static void md_cell(const field *f, char *buf, size_t len)
{
    if (!f) {
        snprintf(buf, len, "-");
        return;
    }
    switch (f->kind) {
    case F_STR: snprintf(buf, len, "%s", f->str); break;
    case F_INT: snprintf(buf, len, "%lld", f->i); break;
    case F_NUM: snprintf(buf, len, "%.*f", f->decimals, f->d); break;
    case F_BOOL: snprintf(buf, len, "%s", f->i ? "yes" : "no"); break;
    case F_MEAN_SD: snprintf(buf, len, "%.*f ± %.*f", f->decimals, f->d, f->decimals, f->sd); break;
    }
}

static int print_md(const bench_report *r, FILE *out)
{
    const field *cols[MAX_FIELDS * 2];
    int n_cols = 0;
    for (size_t i = 0; i < r->n_rows; i++)
        for (int j = 0; j < r->rows[i].n; j++) {
            const field *f = &r->rows[i].fields[j];
            int seen = is_hidden(r, f->key, BENCH_FORMAT_MD);
            for (int c = 0; c < n_cols && !seen; c++)
                seen = strcmp(cols[c]->key, f->key) == 0;
            if (!seen && n_cols < (int)(sizeof cols / sizeof cols[0]))
                cols[n_cols++] = f;
        }
    if (n_cols == 0)
        return 0;
    for (int c = 0; c < n_cols; c++)
        fprintf(out, "| %s ", cols[c]->key);
    fprintf(out, "|\n");
    for (int c = 0; c < n_cols; c++)
        fprintf(out, "|%s", cols[c]->kind == F_STR || cols[c]->kind == F_BOOL ? "---" : "---:");
    fprintf(out, "|\n");
    for (size_t i = 0; i < r->n_rows; i++) {
        for (int c = 0; c < n_cols; c++) {
            char cell[STR_LEN + 16];
            md_cell(find(&r->rows[i], cols[c]->key), cell, sizeof cell);
            fprintf(out, "| %s ", cell);
        }
        fprintf(out, "|\n");
    }
    return 0;
}

/* ---- JSON ------------------------------------------------------------------- */

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

/* JSON keeps 6 significant digits whatever the md decimals: small values
 * (GB/s of a tiny matrix, a fraction of a slow roof) stay exact enough to
 * recompute one field from another. */
static void json_number(FILE *out, double v)
{
    if (isfinite(v))
        fprintf(out, "%.6g", v);
    else
        fprintf(out, "null");
}

static int print_json(const bench_report *r, FILE *out)
{
    fprintf(out, "[");
    for (size_t i = 0; i < r->n_rows; i++) {
        fprintf(out, "%s\n  {", i ? "," : "");
        int first = 1;
        for (int j = 0; j < r->rows[i].n; j++) {
            const field *f = &r->rows[i].fields[j];
            if (is_hidden(r, f->key, BENCH_FORMAT_JSON))
                continue;
            fprintf(out, "%s", first ? "" : ", ");
            first = 0;
            json_string(out, f->key);
            fprintf(out, ": ");
            switch (f->kind) {
            case F_STR: json_string(out, f->str); break;
            case F_INT: fprintf(out, "%lld", f->i); break;
            case F_NUM: json_number(out, f->d); break;
            case F_BOOL: fprintf(out, "%s", f->i ? "true" : "false"); break;
            case F_MEAN_SD:
                json_number(out, f->d);
                fprintf(out, ", ");
                char key[KEY_LEN + 8];
                snprintf(key, sizeof key, "%s_stddev", f->key);
                json_string(out, key);
                fprintf(out, ": ");
                json_number(out, f->sd);
                break;
            }
        }
        fprintf(out, "}");
    }
    fprintf(out, "%s]\n", r->n_rows ? "\n" : "");
    return 0;
}

int bench_report_print(const bench_report *r, bench_format f, FILE *out)
{
    if (r->failed) {
        fprintf(stderr, "bench: the report ran out of room or memory\n");
        return -1;
    }
    int rc = f == BENCH_FORMAT_JSON ? print_json(r, out) : print_md(r, out);
    if (fflush(out) != 0 || ferror(out))
        return -1;
    return rc;
}
