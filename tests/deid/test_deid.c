/*
 * libdiana - tests of the de-identification engine (include/diana/profile.h).
 *
 * The expectations are computed independently of lib/deid: protected
 * values come from the copy of PS3.15 Table E.1-1 (read here from the TSV,
 * not from the generated C), expected UIDs from OpenSSL's HMAC() directly.
 * Corpus tests run over tests/data/dicom and, when present, over
 * $DIANA_SHARED_DATA/dicom (malformed/ and DICOMDIRs aside).
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <diana/diana.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK()                                                      \
	do {                                                                  \
		if (__lsan_do_recoverable_leak_check()) {                         \
			fprintf(stderr, "memory leaked during the test\n");           \
			abort();                                                      \
		}                                                                 \
	} while (0)
#else
#define LEAK_CHECK() ((void)0)
#endif

#define SECRET "libdiana test secret: 0123456789abcdef"      /* 38 bytes */
#define SECRET2 "another project secret 0123456789ABCDEFGHIJ" /* 43 bytes */

static char tmpdir[256];

static void rm_rf(const char *path)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", path);
}

static void setup(void)
{
	cr_assert_gt(diana_init(), 0);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/diana-deid-test-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
	rm_rf(tmpdir);
	diana_shutdown();
	LEAK_CHECK();
}

TestSuite(corpus, .init = setup, .fini = teardown, .timeout = 600);
TestSuite(deid, .init = setup, .fini = teardown, .timeout = 120);
TestSuite(option, .init = setup, .fini = teardown, .timeout = 60);

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

static char *write_secret(const char *name, const char *secret, mode_t mode)
{
	static char path[512];
	FILE *f;
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "%s\n", secret);
	fclose(f);
	cr_assert_eq(chmod(path, mode), 0);
	return path;
}

static diana_profile *profile_with(uint32_t options, const char *secret)
{
	diana_profile_options o = DIANA_PROFILE_OPTIONS_INIT;
	diana_profile *p = NULL;
	o.options = options;
	o.secret = (const uint8_t *)secret;
	o.secret_len = strlen(secret);
	cr_assert_eq(diana_profile_new(&p, &o), 0, "%s", diana_error_message());
	return p;
}

static diana_profile *profile(uint32_t options)
{
	return profile_with(options, SECRET);
}

/* expected pseudonymous UID: 2.25.<first 128 bits of HMAC-SHA256("uid:" + uid)> */
static void expected_uid(const char *secret, const char *uid, char out[80])
{
	unsigned char h[32];
	unsigned int hl = 0;
	char msg[256], digits[64];
	unsigned __int128 v = 0;
	int n = 0;
	snprintf(msg, sizeof msg, "uid:%s", uid);
	cr_assert_not_null(HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg,
	                        strlen(msg), h, &hl));
	for (int i = 0; i < 16; i++)
		v = (v << 8) | h[i];
	do {
		digits[n++] = (char)('0' + (int)(v % 10));
		v /= 10;
	} while (v);
	strcpy(out, "2.25.");
	for (int i = 0; i < n; i++)
		out[5 + i] = digits[n - 1 - i];
	out[5 + n] = 0;
}

static char *get(const diana_dataset *ds, const char *key)
{
	char *v = NULL;
	int rc = diana_dataset_get(ds, key, &v);
	if (rc == DIANA_ENOTFOUND)
		return NULL;
	cr_assert_eq(rc, 0, "get %s: %s", key, diana_error_message());
	return v;
}

static int has(const diana_dataset *ds, const char *key)
{
	char *v = NULL;
	int rc = diana_dataset_get(ds, key, &v);
	diana_free(v);
	return rc != DIANA_ENOTFOUND;
}

static void expect_value(const diana_dataset *ds, const char *key, const char *want)
{
	char *v = get(ds, key);
	if (!want) {
		cr_expect_null(v, "%s should be absent", key);
	} else {
		cr_expect_not_null(v, "%s absent", key);
		if (v)
			cr_expect_str_eq(v, want, "%s: [%s], expected [%s]", key, v, want);
	}
	diana_free(v);
}

static diana_dataset *from_json(const char *json)
{
	diana_dataset *ds = NULL;
	cr_assert_eq(diana_dataset_from_json(&ds, json, 0), 0, "%s", diana_error_message());
	return ds;
}

static diana_dataset *anon_json(diana_profile *p, const char *json, diana_deid_result **r)
{
	diana_dataset *ds = from_json(json);
	cr_assert_eq(diana_anonymize_dataset(p, ds, r), 0, "%s", diana_error_message());
	return ds;
}

static int uid_valid(const char *u)
{
	size_t n = strlen(u);
	if (n == 0 || n > 64)
		return 0;
	for (const char *c = u; *c;) {
		const char *e = c;
		while (*e >= '0' && *e <= '9')
			e++;
		if (e == c || (*c == '0' && e - c > 1))
			return 0;
		if (*e == '.') {
			c = e + 1;
			if (!*c)
				return 0;
		} else if (!*e) {
			break;
		} else {
			return 0;
		}
	}
	return 1;
}

/* ------------------------------------------------------------------------ */
/* PS3.15 Table E.1-1, read from the TSV                                     */
/* ------------------------------------------------------------------------ */

typedef struct {
	uint32_t tag, mask;
} trow;
static trow *table;
static size_t ntable;

static void load_table(void)
{
	const char *path = getenv("DIANA_DEID_TABLE");
	char line[4096];
	FILE *f;
	if (table)
		return;
	cr_assert_not_null(path, "DIANA_DEID_TABLE not set");
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	table = calloc(1024, sizeof *table);
	while (fgets(line, sizeof line, f)) {
		uint32_t v = 0, m = 0;
		int ok = line[0] == '(' && line[5] == ',' && line[10] == ')';
		if (!ok)
			continue;
		for (int i = 1; i < 10; i++) {
			char c = line[i];
			if (i == 5)
				continue;
			v <<= 4;
			m <<= 4;
			if (c != 'X' && c != 'x') {
				v |= (uint32_t)strtoul((char[]){ c, 0 }, NULL, 16);
				m |= 0xF;
			}
		}
		table[ntable].tag = v;
		table[ntable].mask = m;
		ntable++;
	}
	fclose(f);
	cr_assert_gt(ntable, 600);
}

static int listed(uint32_t tag)
{
	if ((tag >> 16) & 1)
		return 1; /* private */
	for (size_t i = 0; i < ntable; i++)
		if ((tag & table[i].mask) == table[i].tag)
			return 1;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* a leak scanner of the test's own                                          */
/* ------------------------------------------------------------------------ */

typedef struct {
	char **v;
	size_t n, cap;
} strset;

static void set_add(strset *s, const char *v)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], v))
			return;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->v = realloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n++] = strdup(v);
}

static void set_free(strset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof *s);
}

typedef struct {
	const diana_dataset *ds;
	strset *protect, *kept;
	int depth_in_private;
} collect_ctx;

static void split_add(strset *s, const char *text, int pn)
{
	char *copy = strdup(text), *save = NULL;
	for (char *t = strtok_r(copy, pn ? "\\^=" : "\\", &save); t; t = strtok_r(NULL, pn ? "\\^=" : "\\", &save)) {
		while (*t == ' ')
			t++;
		size_t n = strlen(t);
		while (n && t[n - 1] == ' ')
			t[--n] = 0;
		/* short values match everywhere: a scanner keeps them out too */
		if (n >= 5 || (n >= 4 && strpbrk(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")))
			set_add(s, t);
	}
	free(copy);
}

static int collect_cb(const diana_element *e, void *ud)
{
	collect_ctx *c = ud;
	char *v = NULL;
	if (!strcmp(e->vr, "SQ") || e->tag == 0x7FE00010u || (e->tag >> 16) == 0xFFFE)
		return 0;
	if (diana_dataset_get(c->ds, e->path, &v) != 0)
		return 0; /* binary or undecodable: the text checks do not apply */
	if ((e->tag & 0xFFFF) == 0 || (e->tag >> 16) == 0x0002) {
		/* group lengths and the meta group are not patient data */
	} else if (listed(e->tag)) {
		split_add(c->protect, v, !strcmp(e->vr, "PN"));
	} else {
		split_add(c->kept, v, !strcmp(e->vr, "PN"));
	}
	diana_free(v);
	return 0;
}

/* digits and separators only (dates, times, numbers, UIDs): matched as whole values */
static int numeric(const char *v)
{
	for (; *v; v++)
		if (!isdigit((unsigned char)*v) && !strchr(".+-: ", *v))
			return 0;
	return 1;
}

/* the values libdiana writes as dummies are no leak when an original held them */
static int is_dummy(const char *v)
{
	static const char *const dummies[] = { "ANONYMIZED", "19000101000000", "000000", "000D",
	                                       "urn:x-diana:anonymized", "UNMODIFIED", "REMOVED", "YES" };
	for (size_t i = 0; i < sizeof dummies / sizeof dummies[0]; i++)
		if (strcasestr(dummies[i], v))
			return 1;
	return 0;
}

/*
 * The values to look for: those of listed attributes, unless the same text
 * is (part of) a value the profile keeps anyway (an unlisted attribute of
 * the same object: Manufacturer "TOSHIBA_MEC" holds a Station Name
 * "TOSHIBA") or a dummy.
 */
/* a number that can identify: an ID or date (5+ digits) or a UID; not a measurement */
static int identifying_number(const char *v)
{
	size_t dots = 0, n = strlen(v);
	for (const char *c = v; *c; c++) {
		if (*c == '.')
			dots++;
		else if (!isdigit((unsigned char)*c))
			return 0; /* signs, spaces: coordinates, offsets */
	}
	return dots == 0 ? n >= 5 : dots >= 2 && n >= 10;
}

static void effective_set(const strset *protect, const strset *kept, strset *out)
{
	for (size_t i = 0; i < protect->n; i++) {
		const char *p = protect->v[i];
		int skip = is_dummy(p) || (numeric(p) && !identifying_number(p));
		for (size_t k = 0; k < kept->n && !skip; k++)
			skip = numeric(p) ? !strcmp(kept->v[k], p) : strcasestr(kept->v[k], p) != NULL;
		if (!skip)
			set_add(out, p);
	}
}

typedef struct {
	const diana_dataset *ds;
	const strset *protect;
	const char *file;
	int leaks;
} scan_ctx;

static int value_leaks(const char *v, const char *p)
{
	if (!numeric(p))
		return strcasestr(v, p) != NULL;
	/* a number, date or UID: a whole value, or the date of a DT */
	for (const char *s = v; s;) {
		const char *e = strchr(s, '\\');
		size_t n = e ? (size_t)(e - s) : strlen(s), pl = strlen(p);
		if ((n == pl || (pl == 8 && n > 8)) && !strncmp(s, p, pl))
			return 1;
		s = e ? e + 1 : NULL;
	}
	return 0;
}

static int scan_cb(const diana_element *e, void *ud)
{
	scan_ctx *c = ud;
	char *v = NULL;
	uint8_t *b = NULL;
	size_t n = 0;
	if (!strcmp(e->vr, "SQ") || e->tag == 0x7FE00010u)
		return 0;
	if (diana_dataset_get(c->ds, e->path, &v) == 0) {
		for (size_t i = 0; i < c->protect->n; i++) {
			if (value_leaks(v, c->protect->v[i])) {
				cr_expect_fail("%s: protected value #%zu survives in %s", c->file, i, e->path);
				c->leaks++;
			}
		}
		diana_free(v);
		return 0;
	}
	/* not text: the raw bytes must not hold a protected text */
	if (diana_dataset_get_bytes(c->ds, e->path, &b, &n) == 0 && b) {
		for (size_t i = 0; i < c->protect->n; i++) {
			size_t pl = strlen(c->protect->v[i]);
			if (!numeric(c->protect->v[i]) && pl <= n && memmem(b, n, c->protect->v[i], pl)) {
				cr_expect_fail("%s: protected bytes #%zu survive in %s", c->file, i, e->path);
				c->leaks++;
			}
		}
		diana_free(b);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* corpus                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct {
	char **paths;
	char **rel;
	size_t n, cap;
} file_list;

static void walk(file_list *l, const char *dir, const char *rel)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[4096], r[4096];
		struct stat st;
		size_t len = strlen(e->d_name);
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		snprintf(r, sizeof r, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
		if (stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			walk(l, path, r);
			continue;
		}
		if ((len > 4 && !strcmp(e->d_name + len - 4, ".tsv")) || !strcmp(e->d_name, "SHA256SUMS") ||
		    (len > 3 && !strcmp(e->d_name + len - 3, ".md")))
			continue;
		if (l->n == l->cap) {
			l->cap = l->cap ? 2 * l->cap : 256;
			l->paths = realloc(l->paths, l->cap * sizeof *l->paths);
			l->rel = realloc(l->rel, l->cap * sizeof *l->rel);
		}
		l->paths[l->n] = strdup(path);
		l->rel[l->n] = strdup(r);
		l->n++;
	}
	closedir(d);
}

static file_list corpus_files(void)
{
	file_list l = { 0 };
	const char *roots[2] = { getenv("DIANA_TEST_DATA"), getenv("DIANA_SHARED_DATA") };
	for (int i = 0; i < 2; i++) {
		char dir[4096];
		if (!roots[i])
			continue;
		snprintf(dir, sizeof dir, "%s/dicom", roots[i]);
		walk(&l, dir, "");
	}
	return l;
}

static void list_free(file_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->paths[i]);
		free(l->rel[i]);
	}
	free(l->paths);
	free(l->rel);
}

static int is_dicomdir(const diana_dataset *ds)
{
	char *v = NULL;
	int yes = 0;
	if (diana_dataset_get(ds, "MediaStorageSOPClassUID", &v) == 0)
		yes = !strcmp(v, "1.2.840.10008.1.3.10");
	diana_free(v);
	return yes;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;
	cr_assert_not_null(f, "%s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

static int run_quiet(const char *prog, const char *arg)
{
	pid_t pid = fork();
	int st = 0;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(prog, prog, arg, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Pixel Data as DICOM JSON (native bytes or the encapsulated item stream) */
static char *pixel_json(const diana_dataset *ds)
{
	char *json = NULL, *out = NULL;
	cJSON *root, *px;
	cr_assert_eq(diana_dataset_to_json(ds, 0, &json), 0, "%s", diana_error_message());
	root = cJSON_Parse(json);
	diana_free(json);
	cr_assert_not_null(root);
	px = cJSON_GetObjectItemCaseSensitive(root, "7FE00010");
	if (px)
		out = cJSON_PrintUnformatted(px);
	cJSON_Delete(root);
	return out;
}

/* every UID-valued (U) original at path P is, in the output at P, its pseudonym */
typedef struct {
	const diana_dataset *orig, *out;
	const char *file;
	int checked;
} uid_ctx;

static int is_u_row(uint32_t tag)
{
	static const uint32_t u[] = {
		0x00080018, 0x0020000D, 0x0020000E, 0x00200052, 0x00081155, 0x00020003, 0x00080014,
		0x0040A124, 0x00200200, 0x30060024, 0x300600C2, 0x00081195, 0x00083010, 0x00209161,
	};
	for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
		if (tag == u[i])
			return 1;
	return 0;
}

static int uid_map_cb(const diana_element *e, void *ud)
{
	uid_ctx *c = ud;
	char *o = NULL, *n = NULL, want[80];
	if (strcmp(e->vr, "UI") || !is_u_row(e->tag))
		return 0;
	if (diana_dataset_get(c->orig, e->path, &o) != 0 || !*o || strchr(o, '\\')) {
		diana_free(o);
		return 0;
	}
	if (diana_dataset_get(c->out, e->path, &n) == 0) {
		expected_uid(SECRET, o, want);
		cr_expect_str_eq(n, want, "%s: %s not mapped as expected", c->file, e->path);
		c->checked++;
	}
	diana_free(o);
	diana_free(n);
	return 0;
}

static int uid_valid_cb(const diana_element *e, void *ud)
{
	uid_ctx *c = ud;
	char *v = NULL;
	if (strcmp(e->vr, "UI"))
		return 0;
	if (diana_dataset_get(c->out, e->path, &v) == 0) {
		char *save = NULL;
		for (char *t = strtok_r(v, "\\", &save); t; t = strtok_r(NULL, "\\", &save))
			cr_expect(uid_valid(t), "%s: invalid UID in %s", c->file, e->path);
		c->checked++;
	}
	diana_free(v);
	return 0;
}

Test(corpus, every_file_deidentified_without_leaks)
{
	file_list l = corpus_files();
	diana_profile *p = profile(0), *p_again = profile(0), *p_other = profile_with(0, SECRET2);
	int have_dcmdump = access("/usr/bin/dcmdump", X_OK) == 0;
	size_t tested = 0, uids_checked = 0;
	char outpath[600], origpath[600];

	load_table();
	snprintf(outpath, sizeof outpath, "%s/out.dcm", tmpdir);
	cr_assert_gt(l.n, 100, "corpus not found (DIANA_TEST_DATA)");
	for (size_t i = 0; i < l.n; i++) {
		const char *f = l.rel[i];
		diana_dataset *orig = NULL, *out = NULL;
		uint8_t *data, *res = NULL, *res2 = NULL, *res3 = NULL;
		size_t len, rlen = 0, rlen2 = 0, rlen3 = 0;
		strset protect = { 0 }, kept = { 0 };
		char *px1, *px2, *sop, *sop3;

		if (!strncmp(f, "malformed/", 10))
			continue;
		data = read_file(l.paths[i], &len);
		if (diana_dataset_open_memory(&orig, data, len, NULL) != 0) {
			cr_expect_fail("%s: original does not open: %s", f, diana_error_message());
			free(data);
			continue;
		}
		if (is_dicomdir(orig)) {
			diana_dataset_free(orig);
			free(data);
			continue;
		}
		tested++;

		/* de-identify */
		if (diana_anonymize_memory(p, data, len, &res, &rlen, NULL) != 0) {
			cr_expect_fail("%s: anonymize: %s", f, diana_error_message());
			diana_dataset_free(orig);
			free(data);
			continue;
		}
		cr_expect_eq(diana_dataset_open_memory(&out, res, rlen, NULL), 0, "%s: output does not parse: %s",
		             f, diana_error_message());
		if (!out) {
			diana_free(res);
			diana_dataset_free(orig);
			free(data);
			continue;
		}

		/* dcmdump reads it (when it reads the original) */
		if (have_dcmdump) {
			snprintf(origpath, sizeof origpath, "%s", l.paths[i]);
			write_file(outpath, res, rlen);
			if (run_quiet("/usr/bin/dcmdump", origpath) == 0)
				cr_expect_eq(run_quiet("/usr/bin/dcmdump", outpath), 0, "%s: dcmdump fails on the output", f);
		}

		/* no protected value survives */
		{
			collect_ctx cc = { orig, &protect, &kept, 0 };
			scan_ctx sc;
			strset effective = { 0 };
			cr_assert_eq(diana_dataset_foreach(orig, DIANA_FOREACH_META, collect_cb, &cc), 0);
			effective_set(&protect, &kept, &effective);
			sc.ds = out;
			sc.protect = &effective;
			sc.file = f;
			sc.leaks = 0;
			cr_assert_eq(diana_dataset_foreach(out, DIANA_FOREACH_META, scan_cb, &sc), 0);
			set_free(&effective);
		}

		/* UIDs valid, and mapped as HMAC of the original wherever they are */
		{
			uid_ctx uc = { orig, out, f, 0 };
			cr_assert_eq(diana_dataset_foreach(out, DIANA_FOREACH_META, uid_valid_cb, &uc), 0);
			uc.checked = 0;
			cr_assert_eq(diana_dataset_foreach(orig, DIANA_FOREACH_META, uid_map_cb, &uc), 0);
			uids_checked += (size_t)uc.checked;
		}

		/* pixel data byte for byte; transfer syntax kept */
		px1 = pixel_json(orig);
		px2 = pixel_json(out);
		cr_expect((!px1 && !px2) || (px1 && px2 && !strcmp(px1, px2)), "%s: pixel data changed", f);
		free(px1);
		free(px2);
		{
			char *ts1 = get(orig, "TransferSyntaxUID"), *ts2 = get(out, "TransferSyntaxUID");
			if (ts1)
				cr_expect(ts2 && !strcmp(ts1, ts2), "%s: transfer syntax changed", f);
			diana_free(ts1);
			diana_free(ts2);
		}
		expect_value(out, "PatientIdentityRemoved", "YES");

		/* deterministic: same secret, same bytes (another profile too) */
		cr_expect_eq(diana_anonymize_memory(p, data, len, &res2, &rlen2, NULL), 0);
		cr_expect(rlen2 == rlen && !memcmp(res, res2, rlen), "%s: second run differs", f);
		diana_free(res2);
		res2 = NULL;
		cr_expect_eq(diana_anonymize_memory(p_again, data, len, &res2, &rlen2, NULL), 0);
		cr_expect(rlen2 == rlen && !memcmp(res, res2, rlen), "%s: same secret, other profile differs", f);
		/* another secret, other pseudonyms */
		cr_expect_eq(diana_anonymize_memory(p_other, data, len, &res3, &rlen3, NULL), 0);
		{
			diana_dataset *o3 = NULL;
			cr_assert_eq(diana_dataset_open_memory(&o3, res3, rlen3, NULL), 0);
			sop = get(out, "SOPInstanceUID");
			sop3 = get(o3, "SOPInstanceUID");
			if (sop && *sop)
				cr_expect(sop3 && strcmp(sop, sop3), "%s: another secret gives the same UID", f);
			diana_free(sop);
			diana_free(sop3);
			sop = get(out, "PatientID");
			sop3 = get(o3, "PatientID");
			cr_expect(sop && sop3 && strcmp(sop, sop3), "%s: another secret gives the same Patient ID", f);
			diana_free(sop);
			diana_free(sop3);
			diana_dataset_free(o3);
		}
		diana_free(res2);
		diana_free(res3);
		diana_free(res);
		set_free(&protect);
		set_free(&kept);
		diana_dataset_free(out);
		diana_dataset_free(orig);
		free(data);
	}
	cr_expect_geq(tested, 90, "only %zu corpus files de-identified", tested);
	cr_expect_gt(uids_checked, tested, "UID mapping barely checked (%zu)", uids_checked);
	diana_profile_free(p);
	diana_profile_free(p_again);
	diana_profile_free(p_other);
	list_free(&l);
}

Test(corpus, malformed_files_refused_without_output)
{
	file_list l = corpus_files();
	diana_profile *p = profile(0);
	size_t tested = 0;
	char out[600];
	for (size_t i = 0; i < l.n; i++) {
		struct stat st;
		if (strncmp(l.rel[i], "malformed/", 10))
			continue;
		snprintf(out, sizeof out, "%s/malformed-%zu.dcm", tmpdir, i);
		int rc = diana_anonymize_file(p, l.paths[i], out, NULL);
		/* refused, except files whose defect lenient parsing accepts: none here, strict */
		cr_expect_lt(rc, 0, "%s: malformed file de-identified", l.rel[i]);
		cr_expect_neq(stat(out, &st), 0, "%s: an output was left behind", l.rel[i]);
		if (rc < 0)
			cr_expect_str_not_empty(diana_error_message());
		tested++;
	}
	cr_expect_geq(tested, 9);
	diana_profile_free(p);
	list_free(&l);
}

/* ------------------------------------------------------------------------ */
/* synthetic objects                                                          */
/* ------------------------------------------------------------------------ */

/* An MR-like object full of PHI, with references and a private block. */
#define PHI_JSON(pid, name, sop, extra)                                                      \
	"{\"00080005\":{\"vr\":\"CS\",\"Value\":[\"ISO_IR 100\"]},"                          \
	"\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.4\"]},"            \
	"\"00080018\":{\"vr\":\"UI\",\"Value\":[\"" sop "\"]},"                              \
	"\"00080020\":{\"vr\":\"DA\",\"Value\":[\"20240315\"]},"                             \
	"\"00080021\":{\"vr\":\"DA\",\"Value\":[\"20240317\"]},"                             \
	"\"00080030\":{\"vr\":\"TM\",\"Value\":[\"101500\"]},"                               \
	"\"00080050\":{\"vr\":\"SH\",\"Value\":[\"ACC-7781\"]},"                             \
	"\"00080060\":{\"vr\":\"CS\",\"Value\":[\"MR\"]},"                                   \
	"\"00080080\":{\"vr\":\"LO\",\"Value\":[\"Saint Example Hospital\"]},"               \
	"\"00080090\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"DOCTOR^WHOEVER\"}]},"      \
	"\"00081010\":{\"vr\":\"SH\",\"Value\":[\"SCANNER-ROOM4\"]},"                        \
	"\"00081030\":{\"vr\":\"LO\",\"Value\":[\"Brain of Mrs Testperson\"]},"              \
	"\"00081140\":{\"vr\":\"SQ\",\"Value\":[{"                                           \
	"\"00081150\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.4\"]},"            \
	"\"00081155\":{\"vr\":\"UI\",\"Value\":[\"1.2.826.0.1.3680043.2.1125.9.1\"]}}]},"    \
	"\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"" name "\"}]},"            \
	"\"00100020\":{\"vr\":\"LO\",\"Value\":[\"" pid "\"]},"                              \
	"\"00100030\":{\"vr\":\"DA\",\"Value\":[\"19610704\"]},"                             \
	"\"00100040\":{\"vr\":\"CS\",\"Value\":[\"F\"]},"                                    \
	"\"00101010\":{\"vr\":\"AS\",\"Value\":[\"062Y\"]},"                                 \
	"\"00101030\":{\"vr\":\"DS\",\"Value\":[71.5]},"                                     \
	"\"00110010\":{\"vr\":\"LO\",\"Value\":[\"ACME PRIVATE\"]},"                         \
	"\"00111001\":{\"vr\":\"LO\",\"Value\":[\"private copy of the name\"]},"             \
	"\"00181000\":{\"vr\":\"LO\",\"Value\":[\"SN-4471-XZ\"]},"                           \
	"\"00190010\":{\"vr\":\"LO\",\"Value\":[\"SIEMENS MR HEADER\"]},"                    \
	"\"0019100C\":{\"vr\":\"IS\",\"Value\":[1000]},"                                     \
	"\"00191008\":{\"vr\":\"CS\",\"Value\":[\"IMAGE NUM 4\"]},"                          \
	"\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"1.2.826.0.1.3680043.2.1125.7\"]},"         \
	"\"0020000E\":{\"vr\":\"UI\",\"Value\":[\"1.2.826.0.1.3680043.2.1125.8\"]},"         \
	"\"00200010\":{\"vr\":\"SH\",\"Value\":[\"STUDY-99\"]},"                             \
	"\"00200052\":{\"vr\":\"UI\",\"Value\":[\"1.2.826.0.1.3680043.2.1125.6\"]}"          \
	extra "}"

#define UID_SOP1 "1.2.826.0.1.3680043.2.1125.9.1"
#define UID_SOP2 "1.2.826.0.1.3680043.2.1125.9.2"

Test(deid, basic_profile_on_a_synthetic_object)
{
	diana_profile *p = profile(0);
	diana_deid_result *r = NULL;
	diana_dataset *ds = anon_json(p, PHI_JSON("PID-000456", "MUSTERMANN^ERIKA", UID_SOP2, ""), &r);
	char want[80], *v;

	/* pseudonyms */
	v = get(ds, "PatientID");
	cr_assert_not_null(v);
	cr_expect_eq(strlen(v), 16);
	for (const char *c = v; *c; c++)
		cr_expect((*c >= 'A' && *c <= 'Z') || (*c >= '2' && *c <= '7'), "Patient ID not base32");
	cr_expect_str_eq(diana_deid_result_get(r, "PatientID"), v);
	diana_free(v);
	v = get(ds, "PatientName");
	cr_assert_not_null(v);
	cr_expect(strchr(v, '^') && !strcasestr(v, "MUSTERMANN") && !strcasestr(v, "ERIKA"), "sham name");
	diana_free(v);
	v = get(ds, "AccessionNumber");
	cr_expect(v && strlen(v) == 16 && strcmp(v, "ACC-7781"), "accession pseudonym");
	diana_free(v);
	v = get(ds, "StudyID");
	cr_expect(v && strlen(v) == 16, "Study ID pseudonym");
	diana_free(v);
	expected_uid(SECRET, UID_SOP2, want);
	expect_value(ds, "SOPInstanceUID", want);
	expect_value(ds, "MediaStorageSOPInstanceUID", NULL); /* built from JSON: no meta */
	expected_uid(SECRET, "1.2.826.0.1.3680043.2.1125.7", want);
	expect_value(ds, "StudyInstanceUID", want);
	cr_expect_str_eq(diana_deid_result_get(r, "StudyInstanceUID"), want);
	cr_expect_str_eq(diana_deid_result_get(r, "OriginalStudyInstanceUID"), "1.2.826.0.1.3680043.2.1125.7");
	expected_uid(SECRET, "1.2.826.0.1.3680043.2.1125.6", want);
	expect_value(ds, "FrameOfReferenceUID", want);
	/* the referenced image keeps pointing at the pseudonym of its SOP Instance UID */
	expected_uid(SECRET, UID_SOP1, want);
	expect_value(ds, "ReferencedImageSequence[0].ReferencedSOPInstanceUID", want);
	expect_value(ds, "ReferencedImageSequence[0].ReferencedSOPClassUID", "1.2.840.10008.5.1.4.1.1.4");
	expect_value(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.4");

	/* the basic profile itself */
	expect_value(ds, "StudyDate", "");
	expect_value(ds, "SeriesDate", "19000101"); /* X/D: the dummy keeps any IOD valid */
	expect_value(ds, "StudyTime", "");
	expect_value(ds, "ReferringPhysicianName", "");
	expect_value(ds, "StudyDescription", NULL);
	expect_value(ds, "InstitutionName", "ANONYMIZED");
	expect_value(ds, "StationName", "ANONYMIZED");
	expect_value(ds, "PatientBirthDate", "");
	expect_value(ds, "PatientSex", "");
	expect_value(ds, "PatientAge", NULL);
	expect_value(ds, "PatientWeight", NULL);
	expect_value(ds, "Modality", "MR");
	cr_expect(!has(ds, "00110010") && !has(ds, "00111001") && !has(ds, "00190010") && !has(ds, "0019100C"),
	          "private elements removed");
	v = get(ds, "DeviceSerialNumber");
	cr_expect(v && strlen(v) == 16, "device serial number: keyed code");
	diana_free(v);

	/* the record of what was done */
	expect_value(ds, "PatientIdentityRemoved", "YES");
	expect_value(ds, "LongitudinalTemporalInformationModified", "REMOVED");
	expect_value(ds, "DeidentificationMethodCodeSequence[0].CodeValue", "113100");
	expect_value(ds, "DeidentificationMethodCodeSequence[0].CodingSchemeDesignator", "DCM");
	expect_value(ds, "DeidentificationMethodCodeSequence[0].CodeMeaning",
	             "Basic Application Confidentiality Profile");
	cr_expect(!has(ds, "DeidentificationMethodCodeSequence[1].CodeValue"), "no option codes");
	v = get(ds, "DeidentificationMethod");
	cr_expect(v && strstr(v, "PS3.15 Basic Application Level Confidentiality Profile"));
	diana_free(v);

	/* the result names the originals for the key row */
	cr_expect_str_eq(diana_deid_result_get(r, "OriginalPatientID"), "PID-000456");
	cr_expect_str_eq(diana_deid_result_get(r, "OriginalPatientName"), "MUSTERMANN^ERIKA");
	cr_expect_str_eq(diana_deid_result_get(r, "OriginalAccessionNumber"), "ACC-7781");
	cr_expect_str_eq(diana_deid_result_get(r, "OriginalStudyDate"), "20240315");
	cr_expect_str_eq(diana_deid_result_get(r, "OriginalPatientBirthDate"), "19610704");
	cr_expect_str_eq(diana_deid_result_get(r, "StudyDate"), "");
	cr_expect_null(diana_deid_result_get(r, "NoSuchField"));
	diana_deid_result_free(r);
	diana_dataset_free(ds);
	diana_profile_free(p);
}

Test(deid, same_patient_same_pseudonyms_across_objects)
{
	diana_profile *p = profile(0);
	diana_dataset *a = anon_json(p, PHI_JSON("PID-1", "ROE^JANE", UID_SOP1, ""), NULL);
	diana_dataset *b = anon_json(p, PHI_JSON("PID-1", "ROE^JANE", UID_SOP2, ""), NULL);
	diana_dataset *c = anon_json(p, PHI_JSON("PID-2", "ROE^JANE", UID_SOP2, ""), NULL);
	char *va = get(a, "PatientID"), *vb = get(b, "PatientID"), *vc = get(c, "PatientID");
	cr_expect_str_eq(va, vb);
	cr_expect_str_neq(va, vc);
	diana_free(va);
	diana_free(vb);
	diana_free(vc);
	va = get(a, "PatientName");
	vb = get(b, "PatientName");
	cr_expect_str_eq(va, vb);
	diana_free(va);
	diana_free(vb);
	/* object a's SOP Instance UID is what b's ReferencedImageSequence points to */
	va = get(a, "SOPInstanceUID");
	vb = get(b, "ReferencedImageSequence[0].ReferencedSOPInstanceUID");
	cr_expect_str_eq(va, vb);
	diana_free(va);
	diana_free(vb);
	diana_dataset_free(a);
	diana_dataset_free(b);
	diana_dataset_free(c);
	diana_profile_free(p);
}

Test(deid, nested_values_follow_the_same_rules)
{
	diana_profile *p = profile(0);
	diana_dataset *ds = anon_json(p, PHI_JSON("PID-000456", "MUSTERMANN^ERIKA", UID_SOP2,
	        ",\"00081111\":{\"vr\":\"SQ\",\"Value\":[{"
	        "\"00081150\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.3.1.2.3.3\"]},"
	        "\"00081155\":{\"vr\":\"UI\",\"Value\":[\"1.2.826.0.1.3680043.2.1125.5\"]}}]},"
	        "\"00400275\":{\"vr\":\"SQ\",\"Value\":[{"
	        "\"00080050\":{\"vr\":\"SH\",\"Value\":[\"ACC-7781\"]}}]},"
	        "\"52009229\":{\"vr\":\"SQ\",\"Value\":[{"
	        "\"00080050\":{\"vr\":\"SH\",\"Value\":[\"ACC-7781\"]},"
	        "\"00100020\":{\"vr\":\"LO\",\"Value\":[\"PID-000456\"]},"
	        "\"00321060\":{\"vr\":\"LO\",\"Value\":[\"Brain MRI for Mrs Testperson\"]},"
	        "\"00400007\":{\"vr\":\"LO\",\"Value\":[\"Scheduled by Dr Someone\"]},"
	        "\"00400009\":{\"vr\":\"SH\",\"Value\":[\"SPS-1\"]},"
	        "\"00090010\":{\"vr\":\"LO\",\"Value\":[\"NESTED PRIVATE\"]},"
	        "\"00091001\":{\"vr\":\"LO\",\"Value\":[\"nested secret\"]}}]}"), NULL);
	char *top = get(ds, "AccessionNumber"), *nested = get(ds, "SharedFunctionalGroupsSequence[0].AccessionNumber");
	char want[80];
	cr_expect_str_eq(top, nested, "an accession number maps the same at any depth");
	diana_free(top);
	diana_free(nested);
	top = get(ds, "PatientID");
	nested = get(ds, "SharedFunctionalGroupsSequence[0].PatientID");
	cr_expect_str_eq(top, nested);
	diana_free(top);
	diana_free(nested);
	expect_value(ds, "SharedFunctionalGroupsSequence[0].RequestedProcedureDescription", "");
	expect_value(ds, "SharedFunctionalGroupsSequence[0].ScheduledProcedureStepDescription", NULL);
	expect_value(ds, "SharedFunctionalGroupsSequence[0].ScheduledProcedureStepID", NULL);
	cr_expect(!has(ds, "RequestAttributesSequence"), "an X sequence goes with its items");
	cr_expect(!has(ds, "SharedFunctionalGroupsSequence[0].00090010"), "nested private creator removed");
	cr_expect(!has(ds, "SharedFunctionalGroupsSequence[0].00091001"), "nested private element removed");
	/* Referenced Performed Procedure Step Sequence: X/Z/D -> kept as a dummy, UIDs mapped */
	expected_uid(SECRET, "1.2.826.0.1.3680043.2.1125.5", want);
	expect_value(ds, "ReferencedPerformedProcedureStepSequence[0].ReferencedSOPInstanceUID", want);
	expect_value(ds, "ReferencedPerformedProcedureStepSequence[0].ReferencedSOPClassUID",
	             "1.2.840.10008.3.1.2.3.3");
	diana_dataset_free(ds);
	diana_profile_free(p);
}

Test(deid, no_patient_id_gets_one)
{
	diana_profile *p = profile(0);
	diana_deid_result *r = NULL;
	diana_dataset *ds = anon_json(p,
	        "{\"00080018\":{\"vr\":\"UI\",\"Value\":[\"1.2.3.4\"]},"
	        "\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"NOID^PATIENT\"}]}}", &r);
	char *v = get(ds, "PatientID");
	cr_expect(v && strlen(v) == 16);
	cr_expect_str_eq(diana_deid_result_get(r, "PatientID"), v);
	cr_expect_null(diana_deid_result_get(r, "OriginalPatientID"));
	diana_free(v);
	diana_deid_result_free(r);
	diana_dataset_free(ds);
	diana_profile_free(p);
}

/* ------------------------------------------------------------------------ */
/* one test per option                                                        */
/* ------------------------------------------------------------------------ */

static diana_dataset *phi(uint32_t options)
{
	diana_profile *p = profile(options);
	diana_dataset *ds = anon_json(p, PHI_JSON("PID-000456", "MUSTERMANN^ERIKA", UID_SOP2, ""), NULL);
	diana_profile_free(p);
	return ds;
}

static void expect_code(const diana_dataset *ds, const char *code)
{
	char key[96];
	int found = 0;
	for (int i = 0; i < 12; i++) {
		char *v;
		snprintf(key, sizeof key, "DeidentificationMethodCodeSequence[%d].CodeValue", i);
		if (!(v = get(ds, key)))
			break;
		found |= !strcmp(v, code);
		diana_free(v);
	}
	cr_expect(found, "code %s missing from DeidentificationMethodCodeSequence", code);
}

Test(option, names_round_trip)
{
	uint32_t bit = 0;
	for (int i = 0; i < 10; i++) {
		const char *n = diana_deid_option_name(1u << i);
		cr_assert_not_null(n);
		cr_expect_eq(diana_deid_option_from_name(n, &bit), 0);
		cr_expect_eq(bit, 1u << i);
	}
	cr_expect_eq(diana_deid_option_from_name("Retain_Long Modified-Dates", &bit), 0);
	cr_expect_eq(bit, (uint32_t)DIANA_DEID_RETAIN_LONG_MODIFIED_DATES);
	cr_expect_eq(diana_deid_option_from_name("retain-everything", &bit), DIANA_EINVAL);
	cr_expect_null(diana_deid_option_name(3));
	cr_expect_null(diana_deid_option_name(1u << 10));
}

Test(option, retain_safe_private)
{
	diana_dataset *ds = phi(DIANA_DEID_RETAIN_SAFE_PRIVATE);
	expect_value(ds, "00190010", "SIEMENS MR HEADER");
	expect_value(ds, "0019100C", "1000");
	cr_expect(!has(ds, "00191008"), "an unlisted private element of a safe creator is removed");
	cr_expect(!has(ds, "00110010") && !has(ds, "00111001"), "unknown creators removed");
	expect_code(ds, "113111");
	diana_dataset_free(ds);
}

/* the standard's Table E.3.10-1, numbers and code strings only, values checked */
Test(option, retain_safe_private_table)
{
	diana_profile *p = profile(DIANA_DEID_RETAIN_SAFE_PRIVATE);
	diana_dataset *ds = anon_json(p,
	    "{\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.4\"]},"
	    "\"00080018\":{\"vr\":\"UI\",\"Value\":[\"1.2.3.4.5.6.7\"]},"
	    "\"00190010\":{\"vr\":\"LO\",\"Value\":[\"SIEMENS MR HEADER\"]},"
	    "\"0019100C\":{\"vr\":\"LO\",\"Value\":[\"1000 MUSTERMANN\"]},"     /* the table says IS */
	    "\"0019100D\":{\"vr\":\"CS\",\"Value\":[\"DIRECTIONAL\"]},"
	    "\"0019100E\":{\"vr\":\"FD\",\"Value\":[0.5,0.5,0.7071]},"
	    "\"00430010\":{\"vr\":\"LO\",\"Value\":[\"GEMS_PARM_01\"]},"
	    "\"00431039\":{\"vr\":\"IS\",\"Value\":[1000,0,0,0]},"
	    "\"00990010\":{\"vr\":\"LO\",\"Value\":[\"NQHeader\"]},"
	    "\"00991002\":{\"vr\":\"UI\",\"Value\":[\"1.2.826.0.1.3680043.2.1125.8\"]}," /* listed, a UID */
	    "\"00991005\":{\"vr\":\"LT\",\"Value\":[\"analysed for Erika\"]},"          /* listed, text */
	    "\"00991010\":{\"vr\":\"FL\",\"Value\":[1.5]},"
	    "\"70530010\":{\"vr\":\"LO\",\"Value\":[\" Philips PET Private Group \"]},"
	    "\"70531000\":{\"vr\":\"DS\",\"Value\":[0.00123]},"
	    "\"70531009\":{\"vr\":\"DS\",\"Value\":[2.5]}}",
	    NULL);

	expect_value(ds, "00190010", "SIEMENS MR HEADER");
	cr_expect(!has(ds, "0019100C"), "a listed element whose VR is not the table's is removed");
	expect_value(ds, "0019100D", "DIRECTIONAL");
	cr_expect(has(ds, "0019100E"), "FD kept");
	expect_value(ds, "00431039", "1000\\0\\0\\0");
	cr_expect(!has(ds, "00991002"), "the table's UIDs are not kept");
	cr_expect(!has(ds, "00991005"), "the table's free text is not kept");
	cr_expect(has(ds, "00991010"), "NQHeader MI (FL) kept");
	expect_value(ds, "70531000", "0.00123");
	expect_value(ds, "70531009", "2.5");
	diana_dataset_free(ds);

	/* without the option: every private element goes */
	diana_profile_free(p);
	p = profile(0);
	ds = anon_json(p,
	    "{\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.4\"]},"
	    "\"00080018\":{\"vr\":\"UI\",\"Value\":[\"1.2.3.4.5.6.7\"]},"
	    "\"70530010\":{\"vr\":\"LO\",\"Value\":[\"Philips PET Private Group\"]},"
	    "\"70531000\":{\"vr\":\"DS\",\"Value\":[0.00123]}}",
	    NULL);
	cr_expect(!has(ds, "70530010") && !has(ds, "70531000"));
	diana_dataset_free(ds);
	diana_profile_free(p);
}

/* a value that is not what the table says (text in a number) is not kept */
Test(option, retain_safe_private_checks_values)
{
	diana_profile *p = profile(DIANA_DEID_RETAIN_SAFE_PRIVATE);
	diana_dataset *ds = anon_json(p,
	    "{\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.4\"]},"
	    "\"00080018\":{\"vr\":\"UI\",\"Value\":[\"1.2.3.4.5.6.7\"]},"
	    "\"00190010\":{\"vr\":\"LO\",\"Value\":[\"SIEMENS MR HEADER\"]},"
	    "\"0019100D\":{\"vr\":\"CS\",\"Value\":[\"erika\"]},"
	    "\"00430010\":{\"vr\":\"LO\",\"Value\":[\"GEMS_PARM_01\"]},"
	    "\"00431039\":{\"vr\":\"UN\",\"InlineBinary\":\"MTAwMFxNVVNURVI=\"}}", /* "1000\\MUSTER" */
	    NULL);
	cr_expect(!has(ds, "0019100D"), "lower-case text is no code string");
	cr_expect(!has(ds, "00431039"), "UN bytes that are not an IS");
	diana_dataset_free(ds);
	diana_profile_free(p);
}

Test(option, retain_uids)
{
	diana_dataset *ds = phi(DIANA_DEID_RETAIN_UIDS);
	expect_value(ds, "SOPInstanceUID", UID_SOP2);
	expect_value(ds, "StudyInstanceUID", "1.2.826.0.1.3680043.2.1125.7");
	expect_value(ds, "ReferencedImageSequence[0].ReferencedSOPInstanceUID", UID_SOP1);
	expect_code(ds, "113110");
	diana_dataset_free(ds);
}

Test(option, retain_device_identity)
{
	diana_dataset *ds = phi(DIANA_DEID_RETAIN_DEVICE_IDENTITY);
	expect_value(ds, "DeviceSerialNumber", "SN-4471-XZ");
	expect_value(ds, "StationName", "SCANNER-ROOM4");
	expect_value(ds, "InstitutionName", "ANONYMIZED");
	expect_code(ds, "113109");
	diana_dataset_free(ds);
}

Test(option, retain_institution_identity)
{
	diana_dataset *ds = phi(DIANA_DEID_RETAIN_INSTITUTION_IDENTITY);
	expect_value(ds, "InstitutionName", "Saint Example Hospital");
	expect_value(ds, "StationName", "ANONYMIZED");
	expect_code(ds, "113112");
	diana_dataset_free(ds);
}

Test(option, retain_patient_characteristics)
{
	diana_dataset *ds = phi(DIANA_DEID_RETAIN_PATIENT_CHARACTERISTICS);
	expect_value(ds, "PatientSex", "F");
	expect_value(ds, "PatientAge", "062Y");
	expect_value(ds, "PatientWeight", "71.5");
	expect_value(ds, "PatientBirthDate", "");
	expect_code(ds, "113108");
	diana_dataset_free(ds);
}

Test(option, retain_long_full_dates)
{
	diana_dataset *ds = phi(DIANA_DEID_RETAIN_LONG_FULL_DATES);
	expect_value(ds, "StudyDate", "20240315");
	expect_value(ds, "SeriesDate", "20240317");
	expect_value(ds, "StudyTime", "101500");
	expect_value(ds, "PatientBirthDate", "");
	expect_value(ds, "LongitudinalTemporalInformationModified", "UNMODIFIED");
	expect_code(ds, "113106");
	diana_dataset_free(ds);
}

static long day_number(const char *da)
{
	int y, m, d;
	cr_assert_eq(sscanf(da, "%4d%2d%2d", &y, &m, &d), 3, "not a date");
	/* days since 1970-01-01, proleptic Gregorian */
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

Test(option, retain_long_modified_dates)
{
	diana_profile *p = profile(DIANA_DEID_RETAIN_LONG_MODIFIED_DATES);
	diana_dataset *a = anon_json(p, PHI_JSON("PID-000456", "MUSTERMANN^ERIKA", UID_SOP1, ""), NULL);
	diana_dataset *b = anon_json(p,
	        "{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"PID-000456\"]},"
	        "\"00080020\":{\"vr\":\"DA\",\"Value\":[\"20250101\"]},"
	        "\"0008002A\":{\"vr\":\"DT\",\"Value\":[\"20250101083000.25+0100\"]}}", NULL);
	char *sd = get(a, "StudyDate"), *se = get(a, "SeriesDate"), *sb = get(b, "StudyDate");
	char *dt = get(b, "AcquisitionDateTime");
	long shift;
	cr_assert(sd && se && sb && dt);
	shift = day_number(sd) - day_number("20240315");
	cr_expect(shift >= -365 && shift <= -1, "shift %ld outside [-365, -1]", shift);
	cr_expect_eq(day_number(se) - day_number(sd), 2, "interval within the patient kept");
	cr_expect_eq(day_number(sb) - day_number("20250101"), shift, "same shift for the same patient");
	cr_expect_str_eq(dt + 8, "083000.25+0100", "time of a DT kept");
	cr_expect_eq(strncmp(dt, sb, 8), 0, "DT date shifted like the DA");
	expect_value(a, "StudyTime", "101500");
	expect_value(a, "PatientBirthDate", "");
	expect_value(a, "LongitudinalTemporalInformationModified", "MODIFIED");
	expect_code(a, "113107");
	diana_free(sd);
	diana_free(se);
	diana_free(sb);
	diana_free(dt);
	diana_dataset_free(a);
	diana_dataset_free(b);
	diana_profile_free(p);
	{
		/* the range is a setting */
		diana_profile_options o = DIANA_PROFILE_OPTIONS_INIT;
		diana_dataset *c;
		o.options = DIANA_DEID_RETAIN_LONG_MODIFIED_DATES;
		o.secret = (const uint8_t *)SECRET;
		o.secret_len = strlen(SECRET);
		o.date_shift_max_days = 1;
		cr_assert_eq(diana_profile_new(&p, &o), 0);
		c = anon_json(p, PHI_JSON("PID-000456", "MUSTERMANN^ERIKA", UID_SOP1, ""), NULL);
		expect_value(c, "StudyDate", "20240314");
		diana_dataset_free(c);
		diana_profile_free(p);
	}
}

Test(option, clean_descriptors)
{
	diana_dataset *ds = phi(DIANA_DEID_CLEAN_DESCRIPTORS);
	expect_value(ds, "StudyDescription", "ANONYMIZED");
	expect_code(ds, "113105");
	diana_dataset_free(ds);
	ds = phi(0);
	expect_value(ds, "StudyDescription", NULL);
	diana_dataset_free(ds);
}

#define SR_JSON                                                                                     \
	"{\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.88.33\"]},"                 \
	"\"00080018\":{\"vr\":\"UI\",\"Value\":[\"1.2.826.0.1.3680043.2.1125.9.3\"]},"                 \
	"\"00100020\":{\"vr\":\"LO\",\"Value\":[\"PID-000456\"]},"                                     \
	"\"0040A040\":{\"vr\":\"CS\",\"Value\":[\"CONTAINER\"]},"                                       \
	"\"0040A730\":{\"vr\":\"SQ\",\"Value\":[{"                                                      \
	"\"0040A010\":{\"vr\":\"CS\",\"Value\":[\"CONTAINS\"]},"                                        \
	"\"0040A040\":{\"vr\":\"CS\",\"Value\":[\"TEXT\"]},"                                            \
	"\"0040A043\":{\"vr\":\"SQ\",\"Value\":[{"                                                      \
	"\"00080100\":{\"vr\":\"SH\",\"Value\":[\"121071\"]},"                                          \
	"\"00080102\":{\"vr\":\"SH\",\"Value\":[\"DCM\"]},"                                             \
	"\"00080104\":{\"vr\":\"LO\",\"Value\":[\"Finding\"]}}]},"                                      \
	"\"0040A160\":{\"vr\":\"UT\",\"Value\":[\"Mrs Testperson has a lesion\"]}},{"                   \
	"\"0040A010\":{\"vr\":\"CS\",\"Value\":[\"CONTAINS\"]},"                                        \
	"\"0040A040\":{\"vr\":\"CS\",\"Value\":[\"NUM\"]},"                                             \
	"\"0040A300\":{\"vr\":\"SQ\",\"Value\":[{"                                                      \
	"\"0040A30A\":{\"vr\":\"DS\",\"Value\":[12.5]}}]}},{"                                           \
	"\"0040A040\":{\"vr\":\"CS\",\"Value\":[\"PNAME\"]},"                                           \
	"\"0040A123\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"OBSERVER^ANNA\"}]}},{"                \
	"\"0040A040\":{\"vr\":\"CS\",\"Value\":[\"DATE\"]},"                                            \
	"\"0040A121\":{\"vr\":\"DA\",\"Value\":[\"20240316\"]}}]}}"

Test(option, clean_structured_content)
{
	diana_profile *p = profile(0), *pc = profile(DIANA_DEID_CLEAN_STRUCTURED_CONTENT);
	diana_dataset *d = anon_json(p, SR_JSON, NULL), *c = anon_json(pc, SR_JSON, NULL);
	char *v;
	/* both: structure kept, free text and names replaced, numbers kept */
	expect_value(d, "ContentSequence[0].TextValue", "ANONYMIZED");
	expect_value(c, "ContentSequence[0].TextValue", "ANONYMIZED");
	expect_value(d, "ContentSequence[1].MeasuredValueSequence[0].NumericValue", "12.5");
	expect_value(c, "ContentSequence[1].MeasuredValueSequence[0].NumericValue", "12.5");
	expect_value(c, "ContentSequence[0].ValueType", "TEXT");
	v = get(c, "ContentSequence[2].PersonName");
	cr_expect(v && !strcasestr(v, "OBSERVER") && !strcasestr(v, "ANNA"), "PNAME item replaced");
	diana_free(v);
	expect_value(c, "ContentSequence[3].Date", "19000101");
	/* the option keeps the concept names; the basic profile dummies them */
	expect_value(c, "ContentSequence[0].ConceptNameCodeSequence[0].CodeMeaning", "Finding");
	expect_value(c, "ContentSequence[0].ConceptNameCodeSequence[0].CodeValue", "121071");
	expect_value(d, "ContentSequence[0].ConceptNameCodeSequence[0].CodeMeaning", "ANONYMIZED");
	expect_code(c, "113104");
	diana_dataset_free(d);
	diana_dataset_free(c);
	diana_profile_free(p);
	diana_profile_free(pc);
}

#define OVERLAY_JSON                                                                        \
	"{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"PID-000456\"]},"                             \
	"\"60000010\":{\"vr\":\"US\",\"Value\":[4]},"                                           \
	"\"60000011\":{\"vr\":\"US\",\"Value\":[4]},"                                           \
	"\"60000022\":{\"vr\":\"LO\",\"Value\":[\"drawn by Dr Someone\"]},"                     \
	"\"60000040\":{\"vr\":\"CS\",\"Value\":[\"G\"]},"                                       \
	"\"60000050\":{\"vr\":\"SS\",\"Value\":[1,1]},"                                         \
	"\"60000100\":{\"vr\":\"US\",\"Value\":[1]},"                                           \
	"\"60000102\":{\"vr\":\"US\",\"Value\":[0]},"                                           \
	"\"60003000\":{\"vr\":\"OW\",\"InlineBinary\":\"/wA=\"},"                               \
	"\"60004000\":{\"vr\":\"LT\",\"Value\":[\"overlay of Mrs Testperson\"]}}"

Test(option, clean_graphics)
{
	diana_profile *p = profile(0), *pg = profile(DIANA_DEID_CLEAN_GRAPHICS);
	diana_dataset *d = anon_json(p, OVERLAY_JSON, NULL), *g = anon_json(pg, OVERLAY_JSON, NULL);
	uint8_t *b = NULL;
	size_t n = 0;
	cr_expect(!has(d, "60000010") && !has(d, "60003000") && !has(d, "60004000"), "overlay removed");
	expect_value(g, "60000010", "4");
	expect_value(g, "60004000", "ANONYMIZED");
	expect_value(g, "60000022", "ANONYMIZED");
	cr_assert_eq(diana_dataset_get_bytes(g, "60003000", &b, &n), 0);
	cr_expect(n == 2 && b[0] == 0 && b[1] == 0, "overlay bitmap blanked, size kept");
	diana_free(b);
	expect_code(g, "113103");
	diana_dataset_free(d);
	diana_dataset_free(g);
	diana_profile_free(p);
	diana_profile_free(pg);
}

/* ------------------------------------------------------------------------ */
/* overrides                                                                  */
/* ------------------------------------------------------------------------ */

Test(deid, overrides)
{
	diana_profile *p = profile(0);
	diana_dataset *ds;
	cr_assert_eq(diana_profile_set_action(p, "StudyDescription", DIANA_ACTION_KEEP, NULL), 0);
	cr_assert_eq(diana_profile_set_action(p, "(0008,0080)", DIANA_ACTION_REPLACE, "Research Site 7"), 0);
	cr_assert_eq(diana_profile_set_action(p, "00080060", DIANA_ACTION_REMOVE, NULL), 0);
	cr_assert_eq(diana_profile_set_action(p, "0020,0010", DIANA_ACTION_EMPTY, NULL), 0);
	cr_assert_eq(diana_profile_set_action(p, "00111001", DIANA_ACTION_KEEP, NULL), 0);
	/* set then dropped */
	cr_assert_eq(diana_profile_set_action(p, "StationName", DIANA_ACTION_KEEP, NULL), 0);
	cr_assert_eq(diana_profile_set_action(p, "StationName", DIANA_ACTION_DEFAULT, NULL), 0);
	ds = anon_json(p, PHI_JSON("PID-000456", "MUSTERMANN^ERIKA", UID_SOP2, ""), NULL);
	expect_value(ds, "StudyDescription", "Brain of Mrs Testperson");
	expect_value(ds, "InstitutionName", "Research Site 7");
	expect_value(ds, "Modality", NULL);
	expect_value(ds, "StudyID", "");
	expect_value(ds, "00111001", "private copy of the name");
	expect_value(ds, "StationName", "ANONYMIZED");
	{
		char *v = get(ds, "DeidentificationMethod");
		cr_expect(v && strstr(v, "overrides"), "overrides recorded in the method");
		diana_free(v);
	}
	diana_dataset_free(ds);

	/* refused */
	cr_expect_eq(diana_profile_set_action(p, "NoSuchKeyword", DIANA_ACTION_KEEP, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_profile_set_action(p, "ReferencedImageSequence[0].ReferencedSOPInstanceUID",
	                                      DIANA_ACTION_KEEP, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_profile_set_action(p, "PixelData", DIANA_ACTION_REMOVE, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_profile_set_action(p, "MediaStorageSOPInstanceUID", DIANA_ACTION_KEEP, NULL),
	             DIANA_EINVAL);
	cr_expect_eq(diana_profile_set_action(p, "PatientIdentityRemoved", DIANA_ACTION_KEEP, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_profile_set_action(p, "PatientName", DIANA_ACTION_REPLACE, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_profile_set_action(p, "PatientName", DIANA_ACTION_KEEP, "x"), DIANA_EINVAL);
	cr_expect_eq(diana_profile_set_action(p, "PatientName", 99, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_profile_set_action(NULL, "PatientName", DIANA_ACTION_KEEP, NULL), DIANA_EINVAL);

	/* a non-ASCII replacement needs a UTF-8 dataset */
	cr_assert_eq(diana_profile_set_action(p, "InstitutionName", DIANA_ACTION_REPLACE, "Zürich"), 0);
	ds = from_json(PHI_JSON("PID-000456", "MUSTERMANN^ERIKA", UID_SOP2, ""));
	cr_expect_eq(diana_anonymize_dataset(p, ds, NULL), DIANA_EINVAL);
	diana_dataset_free(ds);
	diana_profile_free(p);
}

/* ------------------------------------------------------------------------ */
/* the secret                                                                 */
/* ------------------------------------------------------------------------ */

Test(deid, secret_is_required_and_private)
{
	diana_profile_options o = DIANA_PROFILE_OPTIONS_INIT;
	diana_profile *p = (diana_profile *)1;
	char path[600];

	cr_expect_eq(diana_profile_new(&p, NULL), DIANA_EINVAL);
	cr_expect_null(p);
	cr_expect_eq(diana_profile_new(&p, &o), DIANA_EINVAL, "no secret, no profile");
	o.secret = (const uint8_t *)"too short";
	o.secret_len = 9;
	cr_expect_eq(diana_profile_new(&p, &o), DIANA_EINVAL);
	o.secret = NULL;
	o.secret_len = 0;

	o.secret_file = write_secret("readable.key", SECRET, 0640);
	cr_expect_eq(diana_profile_new(&p, &o), DIANA_EAUTH, "group-readable secret accepted");
	o.secret_file = write_secret("world.key", SECRET, 0604);
	cr_expect_eq(diana_profile_new(&p, &o), DIANA_EAUTH, "world-readable secret accepted");
	cr_expect_null(strstr(diana_error_message(), "libdiana test secret"));
	o.secret_file = write_secret("short.key", "0123456789", 0600);
	cr_expect_eq(diana_profile_new(&p, &o), DIANA_EINVAL);
	snprintf(path, sizeof path, "%s/absent.key", tmpdir);
	o.secret_file = path;
	cr_expect_eq(diana_profile_new(&p, &o), DIANA_ENOTFOUND);
	o.secret_file = tmpdir;
	cr_expect_lt(diana_profile_new(&p, &o), 0, "a folder is not a secret file");

	/* a good file: its content minus the trailing newline is the secret */
	o.secret_file = write_secret("good.key", SECRET, 0600);
	cr_assert_eq(diana_profile_new(&p, &o), 0, "%s", diana_error_message());
	{
		diana_profile *q = profile(0);
		diana_dataset *a = anon_json(p, PHI_JSON("PID-1", "A^B", UID_SOP1, ""), NULL);
		diana_dataset *b = anon_json(q, PHI_JSON("PID-1", "A^B", UID_SOP1, ""), NULL);
		char *va = get(a, "SOPInstanceUID"), *vb = get(b, "SOPInstanceUID");
		cr_expect_str_eq(va, vb, "file secret and the same bytes in memory differ");
		diana_free(va);
		diana_free(vb);
		diana_dataset_free(a);
		diana_dataset_free(b);
		diana_profile_free(q);
	}
	diana_profile_free(p);

	/* both, or incompatible options */
	o.secret = (const uint8_t *)SECRET;
	o.secret_len = strlen(SECRET);
	cr_expect_eq(diana_profile_new(&p, &o), DIANA_EINVAL, "secret and secret file");
	o.secret_file = NULL;
	o.options = DIANA_DEID_RETAIN_LONG_FULL_DATES | DIANA_DEID_RETAIN_LONG_MODIFIED_DATES;
	cr_expect_eq(diana_profile_new(&p, &o), DIANA_EINVAL);
	o.options = 1u << 12;
	cr_expect_eq(diana_profile_new(&p, &o), DIANA_EINVAL);
	o.options = 0;
	o.date_shift_max_days = -1;
	cr_expect_eq(diana_profile_new(&p, &o), DIANA_EINVAL);
	o.date_shift_max_days = 0;
	o.version = 99;
	cr_expect_eq(diana_profile_new(&p, &o), DIANA_EUNSUPPORTED);
	cr_expect_eq(diana_profile_options_init(&o, 99), DIANA_EUNSUPPORTED);
	cr_expect_eq(diana_profile_options_init(&o, DIANA_PROFILE_OPTIONS_VERSION), 0);
	cr_expect_eq(o.version, DIANA_PROFILE_OPTIONS_VERSION);
	cr_expect_null(o.secret_file);
}

/* ------------------------------------------------------------------------ */
/* files, memory, key file, threads                                           */
/* ------------------------------------------------------------------------ */

Test(deid, file_and_memory_agree)
{
	const char *root = getenv("DIANA_TEST_DATA");
	char in[600], out[600];
	diana_profile *p = profile(0);
	diana_deid_result *r = NULL, *r2 = NULL;
	uint8_t *data, *mem = NULL, *filebytes;
	size_t len, mlen = 0, flen;
	struct stat st;

	snprintf(in, sizeof in, "%s/dicom/ct/CT_small.dcm", root);
	snprintf(out, sizeof out, "%s/ct.dcm", tmpdir);
	cr_assert_eq(diana_anonymize_file(p, in, out, &r), 0, "%s", diana_error_message());
	cr_assert_eq(stat(out, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600, "new output is private");
	data = read_file(in, &len);
	cr_assert_eq(diana_anonymize_memory(p, data, len, &mem, &mlen, &r2), 0);
	filebytes = read_file(out, &flen);
	cr_expect(flen == mlen && !memcmp(filebytes, mem, mlen), "file and memory outputs differ");
	cr_expect_str_eq(diana_deid_result_get(r, "SOPInstanceUID"), diana_deid_result_get(r2, "SOPInstanceUID"));
	diana_free(mem);
	/* errors */
	cr_expect_eq(diana_anonymize_memory(p, (const uint8_t *)"not dicom at all", 16, &mem, &mlen, NULL) < 0, 1);
	cr_expect_null(mem);
	cr_expect_eq(diana_anonymize_file(p, "/nonexistent/in.dcm", out, NULL), DIANA_ENOTFOUND);
	cr_expect_eq(diana_anonymize_file(NULL, in, out, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_anonymize_dataset(p, NULL, NULL), DIANA_EINVAL);
	free(filebytes);
	free(data);
	diana_deid_result_free(r);
	diana_deid_result_free(r2);
	diana_profile_free(p);
}

typedef struct {
	diana_profile *p;
	const uint8_t *data;
	size_t len;
	uint8_t *out;
	size_t out_len;
	int rc;
} job;

static void *worker(void *arg)
{
	job *j = arg;
	for (int i = 0; i < 20; i++) {
		uint8_t *o = NULL;
		size_t n = 0;
		j->rc = diana_anonymize_memory(j->p, j->data, j->len, &o, &n, NULL);
		if (j->rc < 0)
			break;
		if (!j->out) {
			j->out = o;
			j->out_len = n;
		} else {
			if (n != j->out_len || memcmp(o, j->out, n))
				j->rc = -1000;
			diana_free(o);
		}
	}
	return NULL;
}

Test(deid, one_profile_many_threads)
{
	const char *root = getenv("DIANA_TEST_DATA");
	char in[600];
	diana_profile *p = profile(DIANA_DEID_RETAIN_LONG_MODIFIED_DATES);
	uint8_t *data, *ref = NULL;
	size_t len, rlen = 0;
	pthread_t t[4];
	job j[4];
	snprintf(in, sizeof in, "%s/dicom/mr/MR_small.dcm", root);
	data = read_file(in, &len);
	cr_assert_eq(diana_anonymize_memory(p, data, len, &ref, &rlen, NULL), 0);
	for (int i = 0; i < 4; i++) {
		j[i] = (job){ p, data, len, NULL, 0, 0 };
		pthread_create(&t[i], NULL, worker, &j[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(j[i].rc, 0, "thread %d failed (%d)", i, j[i].rc);
		cr_expect(j[i].out_len == rlen && !memcmp(j[i].out, ref, rlen), "thread %d differs", i);
		diana_free(j[i].out);
	}
	diana_free(ref);
	free(data);
	diana_profile_free(p);
}

static int count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	int n = 0, c;
	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

Test(deid, key_file_one_row_per_study)
{
	diana_profile_options o = DIANA_PROFILE_OPTIONS_INIT;
	diana_profile *p = NULL;
	char key[600];
	struct stat st;
	diana_dataset *ds;

	snprintf(key, sizeof key, "%s/key.csv", tmpdir);
	o.secret = (const uint8_t *)SECRET;
	o.secret_len = strlen(SECRET);
	o.key_file = key;
	cr_assert_eq(diana_profile_new(&p, &o), 0, "%s", diana_error_message());
	cr_assert_eq(stat(key, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
	ds = anon_json(p, PHI_JSON("PID-000456", "MUSTERMANN^ERIKA", UID_SOP1, ""), NULL);
	diana_dataset_free(ds);
	ds = anon_json(p, PHI_JSON("PID-000456", "MUSTERMANN^ERIKA", UID_SOP2, ""), NULL);
	diana_dataset_free(ds);
	cr_expect_eq(count_lines(key), 2, "header + one row for two objects of one study");
	diana_profile_free(p);
	/* reopened: the study is not listed again */
	cr_assert_eq(diana_profile_new(&p, &o), 0);
	ds = anon_json(p, PHI_JSON("PID-000456", "MUSTERMANN^ERIKA", UID_SOP2, ""), NULL);
	diana_dataset_free(ds);
	cr_expect_eq(count_lines(key), 2);
	diana_profile_free(p);
	{
		uint8_t *b;
		size_t n;
		b = read_file(key, &n);
		cr_expect(memmem(b, n, "PID-000456", 10) != NULL, "the key file names the original");
		free(b);
	}
}

#define PRIOR_CODE(v, s, m)                                                                          \
	"{\"00080100\":{\"vr\":\"SH\",\"Value\":[\"" v "\"]},\"00080102\":{\"vr\":\"SH\",\"Value\":[\"" s \
	"\"]},\"00080104\":{\"vr\":\"LO\",\"Value\":[\"" m "\"]}}"

Test(deid, earlier_deidentification_is_kept_when_still_true)
{
	diana_profile *p = profile(DIANA_DEID_CLEAN_DESCRIPTORS);
	diana_dataset *ds = anon_json(p,
	        "{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"PID-1\"]},"
	        "\"00120062\":{\"vr\":\"CS\",\"Value\":[\"YES\"]},"
	        "\"00120063\":{\"vr\":\"LO\",\"Value\":[\"site tool 2.1\"]},"
	        "\"00120064\":{\"vr\":\"SQ\",\"Value\":["
	        PRIOR_CODE("113100", "DCM", "Basic Application Confidentiality Profile") ","
	        PRIOR_CODE("113101", "DCM", "Clean Pixel Data Option") ","
	        PRIOR_CODE("113107", "DCM", "Retain Longitudinal Temporal Information Modified Dates Option") ","
	        PRIOR_CODE("face-off", "99SITE", "Defaced") "]}}", NULL);
	char key[64], *v;
	int have[5] = { 0 }, n = 0;
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof key, "00120064[%d].00080100", i);
		if (!(v = get(ds, key)))
			break;
		n++;
		have[0] += !strcmp(v, "113100");
		have[1] += !strcmp(v, "113101");
		have[2] += !strcmp(v, "113107");
		have[3] += !strcmp(v, "face-off");
		have[4] += !strcmp(v, "113105");
		diana_free(v);
	}
	cr_expect_eq(n, 4, "%d codes", n);
	cr_expect_eq(have[0], 1, "the profile's code once");
	cr_expect_eq(have[1], 1, "an earlier clean option stays");
	cr_expect_eq(have[2], 0, "an earlier retain option no longer holds: dates are removed now");
	cr_expect_eq(have[3], 1, "other coding schemes stay");
	cr_expect_eq(have[4], 1, "this run's option");
	v = get(ds, "DeidentificationMethod");
	cr_expect(v && strstr(v, "site tool 2.1") && strstr(v, "Clean Descriptors Option"));
	diana_free(v);
	diana_dataset_free(ds);
	diana_profile_free(p);
}

static size_t count_files(const char *dir)
{
	char cmd[700];
	FILE *f;
	size_t n = 0;
	snprintf(cmd, sizeof cmd, "find '%s' -type f | wc -l", dir);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%zu", &n), 1);
	pclose(f);
	return n;
}

Test(deid, into_a_folder_tree)
{
	const char *root = getenv("DIANA_TEST_DATA");
	char in[600], out_dir[600], want[900], dicomdir[600], bad[600];
	diana_profile *p = profile(0);
	diana_deid_result *r = NULL;
	char *out = NULL, *out2 = NULL;
	uint8_t *a, *b;
	size_t na, nb;

	snprintf(in, sizeof in, "%s/dicom/ct/CT_small.dcm", root);
	snprintf(dicomdir, sizeof dicomdir, "%s/dicom/dicomdir/pydicom_dicomdirtests/DICOMDIR", root);
	snprintf(bad, sizeof bad, "%s/dicom/malformed/MR_truncated.dcm", root);
	snprintf(out_dir, sizeof out_dir, "%s/tree/", tmpdir);
	cr_assert_eq(diana_anonymize_into(p, in, out_dir, 0, &out, &r), 0, "%s", diana_error_message());
	snprintf(want, sizeof want, "%s/tree/%s/%s/%s/%s.dcm", tmpdir, diana_deid_result_get(r, "PatientID"),
	         diana_deid_result_get(r, "StudyInstanceUID"), diana_deid_result_get(r, "SeriesInstanceUID"),
	         diana_deid_result_get(r, "SOPInstanceUID"));
	cr_expect_str_eq(out, want);
	a = read_file(out, &na);
	/* without the per-file fsync: the same bytes, same place */
	cr_assert_eq(diana_anonymize_into(p, in, out_dir, DIANA_ANON_NO_SYNC, &out2, NULL), 0);
	cr_expect_str_eq(out2, out);
	cr_expect_eq(diana_anonymize_sync(out_dir), 0);
	b = read_file(out2, &nb);
	cr_expect(na == nb && !memcmp(a, b, na), "outputs differ");
	{
		struct stat st;
		char dir[900];
		cr_assert_eq(stat(out, &st), 0);
		cr_expect_eq(st.st_mode & 0777, 0600);
		snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(out, '/') - out), out);
		cr_assert_eq(stat(dir, &st), 0);
		cr_expect_eq(st.st_mode & 0777, 0700, "output folders are private");
	}
	free(a);
	free(b);
	diana_free(out);
	diana_free(out2);
	diana_deid_result_free(r);
	cr_expect_eq(count_files(out_dir), 1, "one file, no temporary left");

	/* a DICOMDIR is skipped, a malformed file refused: nothing written */
	out = (char *)1;
	r = (diana_deid_result *)1;
	cr_expect_eq(diana_anonymize_into(p, dicomdir, out_dir, 0, &out, &r), 1);
	cr_expect_null(out);
	cr_expect_null(r);
	cr_expect_lt(diana_anonymize_into(p, bad, out_dir, 0, &out, NULL), 0);
	cr_expect_null(out);
	cr_expect_eq(count_files(out_dir), 1);
	cr_expect_eq(diana_anonymize_into(p, in, out_dir, 1u << 5, NULL, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_anonymize_into(p, in, "", 0, NULL, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_anonymize_sync("/nonexistent/folder"), DIANA_ENOTFOUND);
	diana_profile_free(p);
}

/* objects without SOP Instance UID (datasets that are not stored images)
 * each get their own output, named by a keyed hash of their input path;
 * and the writeback flags write the same bytes */
Test(deid, into_without_sop_uid_and_flags)
{
	const char *root = getenv("DIANA_TEST_DATA");
	static const char *const names[] = { "private/priv_SQ.dcm", "private/nested_priv_SQ.dcm",
		                             "charset/chrSQEncoding.dcm", "private/UN_sequence.dcm" };
	char in[600], out_dir[600], again[600];
	char *outs[4] = { NULL }, *o = NULL;
	diana_profile *p = profile(0);

	snprintf(out_dir, sizeof out_dir, "%s/nouid", tmpdir);
	for (int i = 0; i < 4; i++) {
		diana_deid_result *r = NULL;
		snprintf(in, sizeof in, "%s/dicom/%s", root, names[i]);
		cr_assert_eq(diana_anonymize_into(p, in, out_dir, DIANA_ANON_NO_SYNC, &outs[i], &r), 0, "%s: %s",
		             names[i], diana_error_message());
		cr_assert_null(diana_deid_result_get(r, "SOPInstanceUID"), "%s has a SOP Instance UID", names[i]);
		const char *base = strrchr(outs[i], '/') + 1;
		cr_expect(!strncmp(base, "nouid-", 6) && strlen(base) == 6 + 32 + 4, "%s", base);
		cr_expect_null(strstr(outs[i], names[i]), "the input's name is not in the output's");
		for (int k = 0; k < i; k++)
			cr_expect_str_neq(outs[i], outs[k], "two inputs, one output");
		diana_deid_result_free(r);
	}
	cr_expect_eq(count_files(out_dir), 4, "each input has its output");
	/* the same input again: the same name (a rerun replaces, never adds) */
	snprintf(in, sizeof in, "%s/dicom/%s", root, names[0]);
	cr_assert_eq(diana_anonymize_into(p, in, out_dir, DIANA_ANON_NO_SYNC | DIANA_ANON_NO_WRITEBACK, &o, NULL), 0);
	cr_expect_str_eq(o, outs[0]);
	diana_free(o);
	/* the three durability modes give the same bytes */
	snprintf(in, sizeof in, "%s/dicom/ct/CT_small.dcm", root);
	{
		uint32_t modes[3] = { 0, DIANA_ANON_NO_SYNC, DIANA_ANON_NO_SYNC | DIANA_ANON_NO_WRITEBACK };
		uint8_t *first = NULL;
		size_t nfirst = 0;
		for (int m = 0; m < 3; m++) {
			uint8_t *b;
			size_t nb;
			snprintf(again, sizeof again, "%s/modes%d", tmpdir, m);
			cr_assert_eq(diana_anonymize_into(p, in, again, modes[m], &o, NULL), 0);
			b = read_file(o, &nb);
			if (!first) {
				first = b;
				nfirst = nb;
			} else {
				cr_expect(nb == nfirst && !memcmp(b, first, nb), "mode %d wrote other bytes", m);
				free(b);
			}
			diana_free(o);
		}
		free(first);
	}
	cr_expect_eq(diana_anonymize_into(p, in, again, DIANA_ANON_NO_WRITEBACK << 1, NULL, NULL), DIANA_EINVAL);
	for (int i = 0; i < 4; i++)
		diana_free(outs[i]);
	diana_profile_free(p);
}
