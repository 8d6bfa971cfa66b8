/*
 * Unit tests of lib/core and the library lifetime: errors, logging,
 * init refcounting across threads, options versions, buffers, base64,
 * atomic files.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <diana/diana.h>

#include "core/core.h"

/* ------------------------------------------------------------ errors */

Test(errors, codes_are_stable)
{
	/* the numbers are ABI: never renumbered */
	cr_assert_eq(DIANA_OK, 0);
	cr_assert_eq(DIANA_ERROR, -1);
	cr_assert_eq(DIANA_EINVAL, -2);
	cr_assert_eq(DIANA_ENOMEM, -3);
	cr_assert_eq(DIANA_EUNSUPPORTED, -4);
	cr_assert_eq(DIANA_ENOTFOUND, -5);
	cr_assert_eq(DIANA_EIO, -6);
	cr_assert_eq(DIANA_EDICOM, -7);
	cr_assert_eq(DIANA_ETIMEDOUT, -8);
	cr_assert_eq(DIANA_ECANCELLED, -9);
	cr_assert_eq(DIANA_EAUTH, -10);
	cr_assert_eq(DIANA_ETLS, -11);
	cr_assert_eq(DIANA_ECONNECT, -12);
	cr_assert_eq(DIANA_EPACS, -13);
	cr_assert_eq(DIANA_EUSER, -14);
	cr_assert_eq(DIANA_ENOTINIT, -15);
	cr_assert_eq(DIANA_EEXISTS, -16);
	cr_assert_eq(DIANA_ELEAK, -17);
	cr_assert_eq(DIANA_ENOSPC, -18);
}

Test(errors, strerror_covers_every_code)
{
	int c;
	for (c = 0; c >= DIANA_ENOSPC; c--) {
		const char *s = diana_strerror(c);
		cr_assert_not_null(s);
		cr_expect_str_neq(s, "unknown error", "code %d has no text", c);
	}
	cr_assert_str_eq(diana_strerror(-9999), "unknown error");
	cr_assert_str_eq(diana_strerror(42), "unknown error");
}

Test(errors, message_is_thread_local_and_one_line)
{
	diana_error_clear();
	cr_assert_eq(diana_error_code(), 0);
	cr_assert_str_eq(diana_error_message(), "");
	cr_assert_eq(diana__error_set(DIANA_EDICOM, "bad %s\nsecond line", "thing"), DIANA_EDICOM);
	cr_assert_eq(diana_error_code(), DIANA_EDICOM);
	cr_assert_str_eq(diana_error_message(), "bad thing second line");
	diana_error_clear();
	cr_assert_eq(diana_error_code(), 0);
}

struct thread_arg {
	int code;
	char seen[64];
	int seen_code;
};

static void *set_error_thread(void *p)
{
	struct thread_arg *a = p;
	int i;
	for (i = 0; i < 2000; i++) {
		diana__error_set(a->code, "thread code %d", a->code);
		if (diana_error_code() != a->code)
			break;
	}
	a->seen_code = diana_error_code();
	snprintf(a->seen, sizeof(a->seen), "%s", diana_error_message());
	return NULL;
}

Test(errors, threads_do_not_see_each_others_errors)
{
	pthread_t t[4];
	struct thread_arg a[4];
	int i;

	for (i = 0; i < 4; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].code = -2 - i;
		cr_assert_eq(pthread_create(&t[i], NULL, set_error_thread, &a[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		char want[64];
		pthread_join(t[i], NULL);
		snprintf(want, sizeof(want), "thread code %d", a[i].code);
		cr_expect_eq(a[i].seen_code, a[i].code);
		cr_expect_str_eq(a[i].seen, want);
	}
}

Test(errors, errno_mapping)
{
	cr_assert_eq(diana__errno_code(ENOENT), DIANA_ENOTFOUND);
	cr_assert_eq(diana__errno_code(ENOSPC), DIANA_ENOSPC);
	cr_assert_eq(diana__errno_code(EDQUOT), DIANA_ENOSPC);
	cr_assert_eq(diana__errno_code(EEXIST), DIANA_EEXISTS);
	cr_assert_eq(diana__errno_code(EACCES), DIANA_EIO);
	cr_assert_eq(diana__error_errno(ENOSPC, "cannot write file"), DIANA_ENOSPC);
	cr_assert(strstr(diana_error_message(), "cannot write file: ") == diana_error_message());
}

Test(errors, options_version_check)
{
	diana_dataset_options o;
	cr_assert_eq(diana__check_version(1, 1, "x"), 0);
	cr_assert_eq(diana__check_version(0, 1, "x"), DIANA_EUNSUPPORTED);
	cr_assert_eq(diana__check_version(2, 1, "x"), DIANA_EUNSUPPORTED);
	cr_assert_str_eq(diana_error_message(), "invalid version 2 on x");
	cr_assert_eq(diana_dataset_options_init(&o, DIANA_DATASET_OPTIONS_VERSION), 0);
	cr_assert_eq(o.version, DIANA_DATASET_OPTIONS_VERSION);
	cr_assert_eq(o.flags, 0);
	cr_assert_eq(diana_dataset_options_init(&o, 999), DIANA_EUNSUPPORTED);
	cr_assert_eq(diana_dataset_options_init(NULL, 1), DIANA_EINVAL);
}

/* ------------------------------------------------------ init/version */

Test(init, refcount)
{
	cr_assert_eq(diana_shutdown(), DIANA_ENOTINIT);
	cr_assert_eq(diana_init(), 1);
	cr_assert_eq(diana_init(), 2);
	cr_assert_eq(diana_shutdown(), 1);
	cr_assert_eq(diana_shutdown(), 0);
	cr_assert_eq(diana_shutdown(), DIANA_ENOTINIT);
	/* and again after a full shutdown */
	cr_assert_eq(diana_init(), 1);
	cr_assert_eq(diana_shutdown(), 0);
}

static void *init_thread(void *p)
{
	int i, *bad = p;
	for (i = 0; i < 200; i++) {
		if (diana_init() < 1)
			(*bad)++;
		if (diana_shutdown() < 0)
			(*bad)++;
	}
	return NULL;
}

Test(init, concurrent_init_shutdown)
{
	pthread_t t[4];
	int bad[4] = { 0 }, i;

	cr_assert_eq(diana_init(), 1); /* keep the library alive meanwhile */
	for (i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, init_thread, &bad[i]);
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(bad[i], 0);
	}
	cr_assert_eq(diana_shutdown(), 0);
}

Test(init, version_matches_headers)
{
	int a = -1, b = -1, c = -1;
	cr_assert_eq(diana_version(&a, &b, &c), 0);
	cr_assert_eq(a, DIANA_VERSION_MAJOR);
	cr_assert_eq(b, DIANA_VERSION_MINOR);
	cr_assert_eq(c, DIANA_VERSION_PATCH);
	cr_assert_eq(diana_version(NULL, NULL, NULL), 0);
	cr_assert_str_eq(diana_version_string(), DIANA_VERSION_STRING);
	cr_assert(diana_features() & DIANA_FEATURE_THREADS);
}

/* ----------------------------------------------------------- logging */

struct log_capture {
	int count;
	int last_level;
	char domain[32];
	char message[256];
};

static void capture(int level, const char *domain, const char *message, void *ud)
{
	struct log_capture *c = ud;
	c->count++;
	c->last_level = level;
	snprintf(c->domain, sizeof(c->domain), "%s", domain);
	snprintf(c->message, sizeof(c->message), "%s", message);
}

Test(log, silent_by_default_then_handler_and_levels)
{
	struct log_capture cap = { 0 };

	cr_assert_not(diana__log_enabled(DIANA_LOG_ERROR)); /* no handler: silent */
	diana_log_set_handler(capture, &cap);
	diana__log(DIANA_LOG_DEBUG, "test", "hidden %d", 1); /* default level: warning */
	cr_assert_eq(cap.count, 0);
	diana__log(DIANA_LOG_WARNING, "test", "shown %d\nline", 2);
	cr_assert_eq(cap.count, 1);
	cr_assert_eq(cap.last_level, DIANA_LOG_WARNING);
	cr_assert_str_eq(cap.domain, "test");
	cr_assert_str_eq(cap.message, "shown 2 line");

	cr_assert_eq(diana_log_set_level(DIANA_LOG_DEBUG), DIANA_LOG_WARNING);
	diana__error_set(DIANA_EIO, "some failure");
	cr_assert_eq(cap.count, 2);
	cr_assert_str_eq(cap.domain, "error");
	cr_assert(strstr(cap.message, "some failure") != NULL);

	diana_log_set_level(DIANA_LOG_NONE);
	diana__log(DIANA_LOG_ERROR, "test", "none");
	cr_assert_eq(cap.count, 2);
	diana_log_set_handler(NULL, NULL);
}

/* ----------------------------------------------------- buffers, base64 */

Test(buf, grow_printf_detach)
{
	diana__buf b = DIANA__BUF_INIT;
	char *s;
	size_t n = 0;
	int i;

	for (i = 0; i < 1000; i++)
		cr_assert_eq(diana__buf_printf(&b, "%d,", i), 0);
	cr_assert_eq(b.len, strlen(b.data));
	cr_assert(strncmp(b.data, "0,1,2,", 6) == 0);
	s = diana__buf_detach(&b, &n);
	cr_assert_not_null(s);
	cr_assert_eq(n, strlen(s));
	cr_assert_null(b.data);
	diana_free(s);
	s = diana__buf_detach(&b, &n);
	cr_assert_str_eq(s, "");
	diana_free(s);
}

Test(base64, rfc4648_vectors_and_round_trip)
{
	static const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	uint8_t bin[1000], *dec;
	size_t i, n;
	char *enc;

	for (i = 0; i < 7; i++) {
		enc = diana__base64_encode((const uint8_t *)plain[i], strlen(plain[i]), &n);
		cr_assert_str_eq(enc, coded[i]);
		cr_assert_eq(n, strlen(coded[i]));
		cr_assert_eq(diana__base64_decode(enc, n, &dec, &n), 0);
		cr_assert_eq(n, strlen(plain[i]));
		cr_assert(memcmp(dec, plain[i], n) == 0);
		diana_free(enc);
		diana_free(dec);
	}
	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (uint8_t)(i * 7 + 3);
	enc = diana__base64_encode(bin, sizeof(bin), &n);
	cr_assert_eq(diana__base64_decode(enc, n, &dec, &n), 0);
	cr_assert_eq(n, sizeof(bin));
	cr_assert(memcmp(dec, bin, n) == 0);
	diana_free(enc);
	diana_free(dec);
	cr_assert_eq(diana__base64_decode("Zm9v!", 5, &dec, &n), DIANA_EINVAL);
	cr_assert_eq(diana__base64_decode("Zg=a", 4, &dec, &n), DIANA_EINVAL);
}

/* -------------------------------------------------------- atomic files */

static char tmpdir[64];

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/diana-test-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

Test(file, atomic_write_commit_and_abort)
{
	char path[128];
	diana__atomic_file f;
	uint8_t *data;
	size_t len;
	struct stat st;

	make_tmpdir();
	snprintf(path, sizeof(path), "%s/out.dcm", tmpdir);
	cr_assert_eq(diana__write_file_atomic(path, "hello", 5), 0);
	cr_assert_eq(diana__file_read(path, 0, &data, &len), 0);
	cr_assert_eq(len, 5);
	cr_assert(memcmp(data, "hello", 5) == 0);
	diana_free(data);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);

	/* an aborted write leaves the old file and no temporary behind */
	cr_assert_eq(diana__atomic_open(&f, path), 0);
	cr_assert_eq(diana__atomic_write(&f, "partial", 7), 0);
	cr_assert_eq(count_entries(tmpdir), 2); /* the file and its temporary */
	diana__atomic_abort(&f);
	cr_assert_eq(count_entries(tmpdir), 1);
	cr_assert_eq(diana__file_read(path, 0, &data, &len), 0);
	cr_assert_eq(len, 5);
	diana_free(data);

	/* size limit (inclusive) and missing files */
	cr_assert_eq(diana__file_read(path, 4, &data, &len), DIANA_EINVAL);
	cr_assert_eq(diana__file_read(path, 5, &data, &len), 0);
	cr_assert_eq(len, 5);
	diana_free(data);
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	cr_assert_eq(diana__file_read(path, 0, &data, &len), DIANA_ENOTFOUND);
	cr_assert_null(data);
	/* a folder that does not exist: error, nothing created */
	snprintf(path, sizeof(path), "%s/no/such/dir/x", tmpdir);
	cr_assert_eq(diana__write_file_atomic(path, "x", 1), DIANA_ENOTFOUND);

	snprintf(path, sizeof(path), "%s/out.dcm", tmpdir);
	unlink(path);
	rmdir(tmpdir);
}

Test(file, full_disk_is_enospc)
{
	diana__atomic_file f;
	static char block[65536];
	int rc = 0, i;

	if (access("/dev/full", W_OK) != 0)
		cr_skip_test("/dev/full not available");
	/* /dev/full cannot be renamed over, but writing to it is the real ENOSPC */
	f.fd = open("/dev/full", O_WRONLY);
	f.path = NULL;
	f.tmp_path = NULL;
	for (i = 0; i < 4 && rc == 0; i++)
		rc = diana__atomic_write(&f, block, sizeof(block));
	cr_assert_eq(rc, DIANA_ENOSPC);
	cr_assert(strstr(diana_error_message(), "No space left") != NULL);
	close(f.fd);
}

/* the decimal of 2.25 UIDs (shared by pseudonyms and SR UIDs) */
Test(util, decimal128)
{
	uint8_t v[16];
	char out[40];

	memset(v, 0xFF, sizeof v);
	diana__decimal128(v, out);
	cr_expect_str_eq(out, "340282366920938463463374607431768211455"); /* 2^128 - 1 */
	memset(v, 0, sizeof v);
	diana__decimal128(v, out);
	cr_expect_str_eq(out, "0");
	v[15] = 0x00, v[14] = 0xCA, v[13] = 0x9A, v[12] = 0x3B; /* 10^9 = 0x3B9ACA00 */
	diana__decimal128(v, out);
	cr_expect_str_eq(out, "1000000000");
	memset(v, 0, sizeof v);
	v[7] = 1; /* 2^64 */
	diana__decimal128(v, out);
	cr_expect_str_eq(out, "18446744073709551616");
}
