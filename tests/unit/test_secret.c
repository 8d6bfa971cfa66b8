/*
 * Unit tests of lib/core's secret file reader (diana__secret_file_read and
 * its _any variant): the one reader behind the project secret, the
 * pipeline's secret files and the HEC token file.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <diana/diana.h>

#include "core/core.h"

static char tmpdir[64];

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/diana-secret-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(secret, .init = setup, .fini = teardown);

/* a file under tmpdir with these bytes and this mode; returns its path (static) */
static const char *put(const char *name, const void *data, size_t len, mode_t mode)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(close(fd), 0);
	cr_assert_eq(chmod(path, mode), 0);
	return path;
}

static const char *puts_(const char *name, const char *text, mode_t mode)
{
	return put(name, text, strlen(text), mode);
}

/* read `text` back through the strict reader, expect `want` */
static void expect_content(const char *text, const char *want)
{
	uint8_t *data = NULL;
	size_t len = 99;
	const char *p = puts_("s.key", text, 0600);

	cr_assert_eq(diana__secret_file_read(p, "k", 1024, &data, &len), 0, "%s", diana_error_message());
	cr_assert_not_null(data);
	cr_expect_eq(len, strlen(want), "content %zu bytes, expected %zu", len, strlen(want));
	cr_expect(memcmp(data, want, strlen(want)) == 0);
	cr_expect_eq(data[len], 0, "NUL-terminated");
	free(data);
}

Test(secret, regular_file_whole_content)
{
	uint8_t *data;
	size_t len;
	static const uint8_t bin[] = { 's', 0, 0xff, '\n', 'x', 0 };
	const char *p;

	expect_content("libdiana test secret 0123456789", "libdiana test secret 0123456789");
	/* binary content, NUL bytes included, comes back whole */
	p = put("bin.key", bin, sizeof bin, 0600);
	cr_assert_eq(diana__secret_file_read(p, NULL, 64, &data, &len), 0);
	cr_expect_eq(len, sizeof bin);
	cr_expect(memcmp(data, bin, sizeof bin) == 0);
	free(data);
	/* owner bits do not matter */
	p = puts_("x.key", "owner-exec", 0700);
	cr_assert_eq(diana__secret_file_read(p, NULL, 64, &data, &len), 0);
	cr_expect_eq(len, 10);
	free(data);
	p = puts_("r.key", "owner-read-only", 0400);
	cr_assert_eq(diana__secret_file_read(p, NULL, 64, &data, &len), 0);
	free(data);
}

Test(secret, exactly_one_line_end_is_cut)
{
	expect_content("abc\n", "abc");
	expect_content("abc\r\n", "abc");
	expect_content("a\n\n", "a\n");
	expect_content("a\r\n\r\n", "a\r\n");
	expect_content("a\n\r\n", "a\n");
	expect_content("a\r", "a\r");       /* a lone CR is content */
	expect_content("a\r\r\n", "a\r");
	expect_content(" a \t", " a \t");   /* spaces are content */
	expect_content("\n", "");
	expect_content("\r\n", "");
}

Test(secret, empty_file)
{
	uint8_t *data = NULL;
	size_t len = 99;
	const char *p = puts_("empty.key", "", 0600);

	cr_assert_eq(diana__secret_file_read(p, "k", 64, &data, &len), 0);
	cr_assert_not_null(data);
	cr_expect_eq(len, 0);
	cr_expect_eq(data[0], 0);
	free(data);
}

Test(secret, group_or_others_bits_refused)
{
	static const mode_t modes[] = { 0640, 0604, 0620, 0602, 0610, 0601, 0644, 0666, 0777 };
	uint8_t *data = (uint8_t *)1;
	size_t len = 99;
	size_t i;

	for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		const char *p = puts_("open.key", "very-secret-content\n", modes[i]);
		cr_expect_eq(diana__secret_file_read(p, "sinks[0].secret_file", 1024, &data, &len), DIANA_EAUTH,
		             "mode %03o", (unsigned)modes[i]);
		cr_expect_null(data);
		cr_expect_eq(len, 0);
		cr_expect_eq(diana_error_code(), DIANA_EAUTH);
		cr_expect_eq(strncmp(diana_error_message(), "sinks[0].secret_file: ", 22), 0, "%s",
		             diana_error_message());
		cr_expect_not_null(strstr(diana_error_message(), "chmod 600"), "%s", diana_error_message());
		cr_expect_null(strstr(diana_error_message(), "very-secret"), "content in the message");
	}
	/* the message shows the mode */
	cr_expect_eq(diana__secret_file_read(puts_("open.key", "x", 0640), "k", 1024, &data, &len), DIANA_EAUTH);
	cr_expect_str_eq(diana_error_message(), "k: accessible by group or others (mode 640): chmod 600 it");
}

Test(secret, directory_and_fifo_are_not_regular)
{
	uint8_t *data = (uint8_t *)1;
	size_t len = 99;
	char fifo[128];

	cr_expect_eq(diana__secret_file_read(tmpdir, "the secret file", 1024, &data, &len), DIANA_EINVAL);
	cr_expect_null(data);
	cr_expect_eq(len, 0);
	cr_expect_str_eq(diana_error_message(), "the secret file: not a regular file");
	/* a FIFO without writer is refused at once, not waited on */
	snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_expect_eq(diana__secret_file_read(fifo, NULL, 1024, &data, &len), DIANA_EINVAL);
	cr_expect_str_eq(diana_error_message(), "not a regular file");
}

Test(secret, size_limit_is_inclusive)
{
	uint8_t *data = (uint8_t *)1;
	size_t len = 99;
	const char *p = puts_("ten.key", "0123456789", 0600);
	char path[128];

	snprintf(path, sizeof path, "%s", p);
	cr_expect_eq(diana__secret_file_read(path, "k", 9, &data, &len), DIANA_EINVAL);
	cr_expect_null(data);
	cr_expect_null(strstr(diana_error_message(), "0123"), "content in the message");
	cr_assert_eq(diana__secret_file_read(path, "k", 10, &data, &len), 0);
	cr_expect_eq(len, 10);
	free(data);
	/* the line end counts towards the size */
	p = puts_("eleven.key", "0123456789\n", 0600);
	cr_expect_eq(diana__secret_file_read(p, "k", 10, &data, &len), DIANA_EINVAL);
	/* a limit of 0: only an empty file */
	p = puts_("empty.key", "", 0600);
	cr_assert_eq(diana__secret_file_read(p, "k", 0, &data, &len), 0);
	cr_expect_eq(len, 0);
	free(data);
	/* messages in MiB and KiB where they divide */
	p = puts_("big.key", "0123456789", 0600);
	cr_expect_eq(diana__secret_file_read(p, "the secret file", 4, &data, &len), DIANA_EINVAL);
	cr_expect_str_eq(diana_error_message(), "the secret file: larger than 4 bytes");
	{
		static char big[2048];
		memset(big, 'x', sizeof big);
		p = put("big.key", big, sizeof big, 0600);
		cr_expect_eq(diana__secret_file_read(p, "k", 1024, &data, &len), DIANA_EINVAL);
		cr_expect_str_eq(diana_error_message(), "k: larger than 1 KiB");
	}
}

Test(secret, missing_file)
{
	uint8_t *data = (uint8_t *)1;
	size_t len = 99;
	char path[128];

	snprintf(path, sizeof path, "%s/absent.key", tmpdir);
	cr_expect_eq(diana__secret_file_read(path, "anonymize.secret_file", 1024, &data, &len), DIANA_ENOTFOUND);
	cr_expect_null(data);
	cr_expect_eq(len, 0);
	cr_expect_eq(strncmp(diana_error_message(), "anonymize.secret_file: ", 23), 0, "%s", diana_error_message());
	cr_expect_null(strstr(diana_error_message(), "absent.key"), "no path in the message");
	snprintf(path, sizeof path, "%s/no/such/dir/x", tmpdir);
	cr_expect_eq(diana__secret_file_read(path, NULL, 1024, &data, &len), DIANA_ENOTFOUND);
}

/* ------------------------------------------------------------ the _any variant */

Test(secret, any_takes_every_mode_and_pipes)
{
	uint8_t *data = NULL;
	size_t len = 0;
	const char *p = puts_("token", "hec-token-1\r\n", 0644);
	int fds[2];
	char path[64];
	static char big[10000];

	cr_assert_eq(diana__secret_file_read_any(p, "the HEC token file", 64, &data, &len), 0);
	cr_expect_eq(len, 11);
	cr_expect_str_eq((char *)data, "hec-token-1");
	free(data);
	/* same line-end rule */
	p = puts_("token", "t\n\n", 0666);
	cr_assert_eq(diana__secret_file_read_any(p, NULL, 64, &data, &len), 0);
	cr_expect_str_eq((char *)data, "t\n");
	free(data);

	/* a pipe (`--token-file <(...)`): no size known, read to the end */
	memset(big, 'k', sizeof big);
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(write(fds[1], big, sizeof big), (ssize_t)sizeof big);
	cr_assert_eq(write(fds[1], "\n", 1), 1);
	close(fds[1]);
	snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
	cr_assert_eq(diana__secret_file_read_any(path, NULL, 65536, &data, &len), 0, "%s", diana_error_message());
	cr_expect_eq(len, sizeof big);
	cr_expect(memcmp(data, big, sizeof big) == 0);
	free(data);
	close(fds[0]);

	/* a pipe: exactly max is fine, one byte more is not */
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(write(fds[1], big, 5000), 5000);
	close(fds[1]);
	snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
	cr_assert_eq(diana__secret_file_read_any(path, NULL, 5000, &data, &len), 0, "%s", diana_error_message());
	cr_expect_eq(len, 5000);
	free(data);
	close(fds[0]);
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(write(fds[1], big, 5001), 5001);
	close(fds[1]);
	snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
	cr_expect_eq(diana__secret_file_read_any(path, NULL, 5000, &data, &len), DIANA_EINVAL);
	cr_expect_null(data);
	close(fds[0]);
}

Test(secret, any_refuses_folders_and_missing_files)
{
	uint8_t *data = (uint8_t *)1;
	size_t len = 99;
	char path[128];

	cr_expect_eq(diana__secret_file_read_any(tmpdir, "the HEC token file", 64, &data, &len), DIANA_EIO);
	cr_expect_null(data);
	cr_expect_str_eq(diana_error_message(), "the HEC token file: is a directory");
	snprintf(path, sizeof path, "%s/absent", tmpdir);
	cr_expect_eq(diana__secret_file_read_any(path, NULL, 64, &data, &len), DIANA_ENOTFOUND);
	puts_("long", "0123456789", 0644);
	snprintf(path, sizeof path, "%s/long", tmpdir);
	cr_expect_eq(diana__secret_file_read_any(path, NULL, 9, &data, &len), DIANA_EINVAL);
}
