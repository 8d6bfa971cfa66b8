/*
 * Unit tests of lib/dicom/charset.c: Specific Character Set -> UTF-8.
 *
 * Byte strings come from the real files in shared/data/dicom/charset
 * (PatientName as stored, extracted with pydicom 2.3.1 and checked against
 * the files at run time when the corpus is present) and from the examples
 * of PS3.5 Annexes H-K / pydicom's test_charset.py.  Expected strings are
 * pydicom's decoding, except where noted (pydicom drops a trailing '=' of a
 * PN; pydicom 2.3.1 mis-decodes ISO 2022 IR 58, PS3.5 K.2 is used there).
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dicom/dicom.h"

/* a byte-string literal and its length */
#define B(s) s, sizeof(s) - 1

/* ------------------------------------------------------------ helpers */

static void check(const char *what, const char *cs, const char *bytes, size_t len, int pn,
                  const char *expected)
{
	char *out = (char *)"untouched";
	int rc = diana__charset_to_utf8(cs, bytes, len, pn, &out);

	cr_assert_eq(rc, 0, "%s: rc %d (%s)", what, rc, diana_error_message());
	cr_assert_not_null(out, "%s", what);
	cr_expect_str_eq(out, expected, "%s: got \"%s\", want \"%s\"", what, out, expected);
	cr_expect_null(strchr(out, 0x1b), "%s: escape sequence leaked into the output", what);
	free(out);
}

static void check_fail(const char *what, const char *cs, const char *bytes, size_t len, int pn,
                       int code, const char *msg_part)
{
	char *out = (char *)"untouched";
	int rc;

	diana_error_clear();
	rc = diana__charset_to_utf8(cs, bytes, len, pn, &out);
	cr_assert_eq(rc, code, "%s: rc %d, want %d", what, rc, code);
	cr_expect_null(out, "%s: *out not reset on failure", what);
	cr_expect_eq(diana_error_code(), code, "%s", what);
	if (msg_part)
		cr_expect_not_null(strstr(diana_error_message(), msg_part),
		                   "%s: message \"%s\" lacks \"%s\"", what, diana_error_message(),
		                   msg_part);
	cr_expect_null(strchr(diana_error_message(), '\n'), "%s: multi-line message", what);
}

/* ------------------------------------------------------- real files */

struct file_vec {
	const char *file;
	const char *charset; /* (0008,0005) bytes as stored */
	const char *bytes;   /* (0010,0010) bytes as stored, padding included */
	size_t len;
	const char *expected;
};

static const struct file_vec file_vecs[] = {
	{ "chrArab", "ISO_IR 127",
	  B("\xe2\xc8\xc7\xe6\xea^\xe4\xe6\xd2\xc7\xd1 "),
	  "قباني^لنزار" },
	{ "chrFren", "ISO_IR 100",
	  B("Buc^J\xe9r\xf4me"),
	  "Buc^Jérôme" },
	{ "chrFrenMulti", "ISO_IR 100",
	  B("Buc^J\xe9r\xf4me"),
	  "Buc^Jérôme" },
	{ "chrGerm", "ISO_IR 100",
	  B("\xc4neas^R\xfc" "diger "),
	  "Äneas^Rüdiger" },
	{ "chrGreek", "ISO_IR 126",
	  B("\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2 "),
	  "Διονυσιος" },
	{ "chrH31", "\\ISO 2022 IR 87 ",
	  B("Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$\x3f$m$&\x1b(B"),
	  "Yamada^Tarou=山田^太郎=やまだ^たろう" },
	{ "chrH32", "ISO 2022 IR 13\\ISO 2022 IR 87 ",
	  B("\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J=\x1b$B$d$^$@\x1b(J^\x1b$B$\x3f$m$&\x1b(J"),
	  "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう" },
	{ "chrHbrw", "ISO_IR 138",
	  B("\xf9\xf8\xe5\xef^\xe3\xe1\xe5\xf8\xe4"),
	  "שרון^דבורה" },
	{ "chrI2", "\\ISO 2022 IR 149",
	  B("Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf"),
	  "Hong^Gildong=洪^吉洞=홍^길동" },
	{ "chrRuss", "ISO_IR 144",
	  B("\xbb\xee\xda" "ce\xdc\xd1yp\xd3"),
	  "Люкceмбypг" },
	/* pydicom shows these two without the trailing '=' (empty last group) */
	{ "chrX1", "ISO_IR 192",
	  B("Wang^XiaoDong=\xe7\x8e\x8b^\xe5\xb0\x8f\xe6\x9d\xb1= "),
	  "Wang^XiaoDong=王^小東=" },
	{ "chrX2", "GB18030 ",
	  B("Wang^XiaoDong=\xcd\xf5^\xd0\xa1\xb6\xab="),
	  "Wang^XiaoDong=王^小东=" },
	/* the PatientName inside the (0032,1064) item, with the item's own
	 * (0008,0005); the top level says ISO_IR 192 */
	{ "chrSQEncoding", "ISO 2022 IR 13\\ISO 2022 IR 87 ",
	  B("\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$\x3f$m$&\x1b(B"),
	  "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう" },
};

#define N_FILE_VECS (sizeof(file_vecs) / sizeof(file_vecs[0]))

Test(files, patient_names)
{
	size_t i;

	for (i = 0; i < N_FILE_VECS; i++) {
		const struct file_vec *v = &file_vecs[i];
		size_t n = v->len;
		while (n > 0 && v->bytes[n - 1] == ' ')
			n--; /* trailing padding, as the dataset reader strips it */
		check(v->file, v->charset, v->bytes, n, 1, v->expected);
	}
}

Test(files, vectors_are_the_bytes_of_the_files)
{
	const char *root = getenv("DIANA_SHARED_DATA");
	size_t i;

	if (!root)
		cr_skip_test("DIANA_SHARED_DATA not set");
	for (i = 0; i < N_FILE_VECS; i++) {
		const struct file_vec *v = &file_vecs[i];
		char path[4096];
		FILE *f;
		char *data;
		long size;

		snprintf(path, sizeof(path), "%s/dicom/charset/%s.dcm", root, v->file);
		f = fopen(path, "rb");
		if (!f)
			cr_skip_test("corpus not present: %s", path);
		fseek(f, 0, SEEK_END);
		size = ftell(f);
		fseek(f, 0, SEEK_SET);
		cr_assert_gt(size, 0);
		data = malloc((size_t)size);
		cr_assert_not_null(data);
		cr_assert_eq(fread(data, 1, (size_t)size, f), (size_t)size);
		fclose(f);
		cr_expect_not_null(memmem(data, (size_t)size, v->bytes, v->len),
		                   "%s: PatientName bytes not found in the file", v->file);
		cr_expect_not_null(memmem(data, (size_t)size, v->charset, strlen(v->charset)),
		                   "%s: (0008,0005) bytes not found in the file", v->file);
		free(data);
	}
}

Test(files, padding_is_converted_not_stripped)
{
	/* the converter is byte-faithful: trimming is the reader's job */
	check("chrArab padded", "ISO_IR 127", file_vecs[0].bytes, file_vecs[0].len, 1,
	      "قباني^لنزار ");
}

Test(files, multi_valued_elements_of_chrFrenMulti)
{
	/* (0010,1001) OtherPatientNames PN, VM 2 and (0010,1000) LO, VM 2 */
	check("chrFrenMulti PN", "ISO_IR 100", B("Buc^J\xe9r\xf4me\\Buc^J\xe9r\xf4me"), 1,
	      "Buc^Jérôme\\Buc^Jérôme");
	check("chrFrenMulti LO", "ISO_IR 100", B("eggs\\spam"), 0, "eggs\\spam");
}

/* ------------------------------------------------ single-byte sets */

struct vec {
	const char *charset;
	const char *bytes;
	size_t len;
	int pn;
	const char *expected;
};

static void check_table(const char *family, const struct vec *v, size_t n)
{
	size_t i;
	char what[128];

	for (i = 0; i < n; i++) {
		snprintf(what, sizeof(what), "%s #%zu (%s)", family, i, v[i].charset);
		check(what, v[i].charset, v[i].bytes, v[i].len, v[i].pn, v[i].expected);
	}
}

Test(single_byte, without_code_extensions)
{
	static const struct vec v[] = {
		{ "ISO_IR 101", B("Wa\xb3\xeasa"), 1, "Wałęsa" },
		{ "ISO_IR 109", B("anta\xfdnomo"), 1, "antaŭnomo" },
		{ "ISO_IR 110", B("v\xe0rds"), 1, "vārds" },
		{ "ISO_IR 148", B("\xc7" "avu\xfeo\xf0lu"), 1, "Çavuşoğlu" },
		{ "ISO_IR 166", B("\xb9\xd2\xc1\xca\xa1\xd8\xc5"), 1, "นามสกุล" },
		{ "ISO_IR 203", B("\xa4 \xa6\xa8\xb4\xb8\xbc\xbd\xbe"), 0, "€ ŠšŽžŒœŸ" },
		{ "ISO_IR 100", B("R\xf6ntgenaufnahme"), 0, "Röntgenaufnahme" },
		{ "ISO_IR 144", B("\xbb\xee\xda" "ce\xdc\xd1yp\xd3"), 1, "Люкceмбypг" },
		{ "ISO_IR 126", B("\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2"), 1, "Διονυσιος" },
		{ "ISO_IR 127", B("\xe2\xc8\xc7\xe6\xea"), 1, "قباني" },
		{ "ISO_IR 138", B("\xf9\xf8\xe5\xef"), 1, "שרון" },
		/* value 1 with code extensions declared: first set used when no ESC */
		{ "ISO 2022 IR 100\\ISO 2022 IR 144", B("Buc^J\xe9r\xf4me"), 1, "Buc^Jérôme" },
	};
	check_table("single-byte", v, sizeof(v) / sizeof(v[0]));
}

Test(single_byte, jis_x_0201)
{
	static const struct vec v[] = {
		{ "ISO_IR 13", B("\xd4\xcf\xc0\xde^\xc0\xdb\xb3"), 1, "ﾔﾏﾀﾞ^ﾀﾛｳ" },
		{ "ISO 2022 IR 13", B("\xb1\xdd"), 0, "ｱﾝ" },
		/* romaji G0 is read as ASCII (pydicom): 0x7E is '~', 0x5C the delimiter */
		{ "ISO 2022 IR 13", B("\xb1~a\\\xb2"), 0, "ｱ~a\\ｲ" },
		{ "ISO 2022 IR 13", B("a~"), 0, "a~" },
	};
	check_table("JIS X 0201", v, sizeof(v) / sizeof(v[0]));
}

Test(single_byte, code_extensions_pydicom_encoded_names)
{
	/* pydicom test_charset.py ENCODED_NAMES, with ['', term] */
	static const struct vec v[] = {
		{ "\\ISO 2022 IR 13", B("ASCII+\x1b)I\xd4\xcf\xc0\xde^\x1b)I\xc0\xdb\xb3"), 1,
		  "ASCII+ﾔﾏﾀﾞ^ﾀﾛｳ" },
		{ "\\ISO 2022 IR 100", B("ASCII+\x1b-ABuc^\x1b-AJ\xe9r\xf4me"), 1,
		  "ASCII+Buc^Jérôme" },
		{ "\\ISO 2022 IR 101", B("ASCII+\x1b-BWa\xb3\xeasa"), 1, "ASCII+Wałęsa" },
		{ "\\ISO 2022 IR 109", B("ASCII+\x1b-Canta\xfdnomo"), 1, "ASCII+antaŭnomo" },
		{ "\\ISO 2022 IR 110", B("ASCII+\x1b-Dv\xe0rds"), 1, "ASCII+vārds" },
		{ "\\ISO 2022 IR 127", B("ASCII+\x1b-G\xe2\xc8\xc7\xe6\xea^\x1b-G\xe4\xe6\xd2\xc7\xd1"), 1,
		  "ASCII+قباني^لنزار" },
		{ "\\ISO 2022 IR 126", B("ASCII+\x1b-F\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2"), 1,
		  "ASCII+Διονυσιος" },
		{ "\\ISO 2022 IR 138", B("ASCII+\x1b-H\xf9\xf8\xe5\xef^\x1b-H\xe3\xe1\xe5\xf8\xe4"), 1,
		  "ASCII+שרון^דבורה" },
		{ "\\ISO 2022 IR 144", B("ASCII+\x1b-L\xbb\xee\xda" "ce\xdc\xd1yp\xd3"), 1,
		  "ASCII+Люкceмбypг" },
		{ "\\ISO 2022 IR 148", B("ASCII+\x1b-M\xc7" "avu\xfeo\xf0lu"), 1, "ASCII+Çavuşoğlu" },
		{ "\\ISO 2022 IR 166", B("ASCII+\x1b-T\xb9\xd2\xc1\xca\xa1\xd8\xc5"), 1,
		  "ASCII+นามสกุล" },
		{ "\\ISO 2022 IR 203", B("ASCII+\x1b-b\xa4"), 1, "ASCII+€" },
	};
	check_table("code extension", v, sizeof(v) / sizeof(v[0]));
}

/* ------------------------------------------------- multi-byte sets */

Test(multi_byte, japanese_jis_x_0208_and_0212)
{
	static const struct vec v[] = {
		/* pydicom test_japanese_multi_byte_personname */
		{ "ISO 2022 IR 6\\ISO 2022 IR 87\\ISO 2022 IR 159",
		  B("Mori^Ogai=\x1b$B\x3f" "9\x1b(B^\x1b$(Dl\x3f\x1b$B30\x1b(B=\x1b$B$b$j\x1b(B^\x1b$B$*$&$,$$\x1b(B"), 1, "Mori^Ogai=森^鷗外=もり^おうがい" },
		/* pydicom test_japanese_multi_byte_encoding: G1 katakana survives
		 * G0 switches */
		{ "ISO 2022 IR 13\\ISO 2022 IR 87\\ISO 2022 IR 159",
		  B("\x1b$B$\x22\x1b(Ja\x1b)I\xb1\x1b$B%\x22\x1b$(DmN\x1b(J"), 0, "あaｱア齩" },
		/* '^' (0x5E) inside a JIS X 0208 pair is not a delimiter */
		{ "\\ISO 2022 IR 87", B("\x1b$B$^\x1b(B^x"), 1, "ま^x" },
		/* a space inside JIS X 0208 mode is a space */
		{ "\\ISO 2022 IR 87", B("\x1b$B;3 ED\x1b(B"), 0, "山 田" },
	};
	check_table("japanese", v, sizeof(v) / sizeof(v[0]));
}

Test(multi_byte, chinese_gb2312_gbk_gb18030)
{
	static const struct vec v[] = {
		/* PS3.5 K.2 (pydicom 2.3.1 leaves "$)A" in its output here) */
		{ "\\ISO 2022 IR 58",
		  B("Zhang^XiaoDong=\x1b$)A\xd5\xc5^\x1b$)A\xd0\xa1\xb6\xab="), 1,
		  "Zhang^XiaoDong=张^小东=" },
		{ "GBK", B("\x81@\xcd\xf5"), 1, "丂王" },
		{ "GB18030", B("\x94\x39\xfc\x36\xa8\xa6\xa2\xe3"), 0, "😀é€" },
		/* stand-alone: further values are ignored */
		{ "GB18030\\ISO 2022 IR 100", B("\xcd\xf5"), 1, "王" },
	};
	check_table("chinese", v, sizeof(v) / sizeof(v[0]));
}

Test(multi_byte, korean)
{
	static const struct vec v[] = {
		/* value 1 IR 149 without escape sequences (pydicom chrKoreanMulti) */
		{ "ISO 2022 IR 149", B("\xb1\xe8\xc8\xf1\xc1\xdf"), 1, "김희중" },
		{ "\\ISO 2022 IR 149", B("Kim^\x1b$)C\xb1\xe8^\x1b$)C\xc8\xf1\xc1\xdf"), 1,
		  "Kim^김^희중" },
	};
	check_table("korean", v, sizeof(v) / sizeof(v[0]));
}

Test(multi_byte, utf8)
{
	static const struct vec v[] = {
		{ "ISO_IR 192", B("Buc^J\xc3\xa9r\xc3\xb4me"), 1, "Buc^Jérôme" },
		{ "ISO_IR 192", B("\xf0\x9f\x98\x80\xef\xbf\xbd\xf4\x8f\xbf\xbf"), 0,
		  "😀\xef\xbf\xbd\xf4\x8f\xbf\xbf" },
		/* stand-alone: no code extensions, an ESC is just a character */
		{ "ISO_IR 192", B("a\x1b(Bb"), 0, "a\x1b(Bb" },
	};
	size_t i;
	for (i = 0; i < 2; i++)
		check("utf8", v[i].charset, v[i].bytes, v[i].len, v[i].pn, v[i].expected);
	{
		char *out = NULL;
		cr_assert_eq(diana__charset_to_utf8(v[2].charset, v[2].bytes, v[2].len, 0, &out), 0);
		cr_assert_str_eq(out, v[2].expected);
		free(out);
	}
}

/* -------------------------------------------------- delimiter resets */

Test(reset, caret_and_equals_reset_only_for_pn)
{
	static const struct vec v[] = {
		/* after a reset no G1 set is active: Latin-1, like pydicom */
		{ "\\ISO 2022 IR 126", B("\x1b-F\xc4^\xc4"), 1, "Δ^Ä" },
		{ "\\ISO 2022 IR 126", B("\x1b-F\xc4=\xc4"), 1, "Δ=Ä" },
		{ "\\ISO 2022 IR 126", B("\x1b-F\xc4^\xc4"), 0, "Δ^Δ" },
		{ "\\ISO 2022 IR 126", B("\x1b-F\xc4=\xc4"), 0, "Δ=Δ" },
		/* pydicom test_single_byte_multi_charset_personname / _text */
		{ "ISO 2022 IR 100\\ISO 2022 IR 126", B("Dionysios=\x1b-F\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2"), 1, "Dionysios=Διονυσιος" },
		{ "ISO 2022 IR 100\\ISO 2022 IR 126",
		  B("Dionysios is \x1b-F\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2"), 0,
		  "Dionysios is Διονυσιος" },
		/* pydicom test_missing_escape_for_single_byte_code_extensions */
		{ "\\ISO 2022 IR 13", B("ASCII+\x1b)I\xd4\xcf\xc0\xde^\xc0\xdb\xb3"), 1,
		  "ASCII+ﾔﾏﾀﾞ^ÀÛ³" },
		/* the reset goes back to value 1, not to ASCII */
		{ "ISO 2022 IR 100\\ISO 2022 IR 126", B("\x1b-F\xc4^\xc4"), 1, "Δ^Ä" },
		{ "ISO 2022 IR 144\\ISO 2022 IR 126", B("\x1b-F\xc4^\xc4"), 1, "Δ^Ф" },
	};
	check_table("pn reset", v, sizeof(v) / sizeof(v[0]));
}

Test(reset, value_separator_and_controls_reset_every_vr)
{
	static const struct vec v[] = {
		{ "\\ISO 2022 IR 126", B("\x1b-F\xc4\\\xc4"), 0, "Δ\\Ä" },
		{ "\\ISO 2022 IR 126", B("\x1b-F\xc4\\\xc4"), 1, "Δ\\Ä" },
		{ "\\ISO 2022 IR 126", B("\x1b-F\xc4\r\n\xc4\t\xc4\x0c\xc4"), 0, "Δ\r\nÄ\tÄ\fÄ" },
		{ "\\ISO 2022 IR 126", B("\x1b-F\xc4\n\x1b-F\xc4"), 0, "Δ\nΔ" },
		/* a control ends JIS X 0208 mode too */
		{ "\\ISO 2022 IR 87", B("\x1b$B;3\r\nED"), 0, "山\r\nED" },
		/* pydicom multiple values with different encodings (PN and LO) */
		{ "ISO 2022 IR 100\\ISO 2022 IR 144\\ISO 2022 IR 126",
		  B("Buc^J\xe9r\xf4me\\\x1b-F\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2\\\x1b-L\xbb\xee\xda" "ce\xdc\xd1yp\xd3"), 1, "Buc^Jérôme\\Διονυσιος\\Люкceмбypг" },
		{ "ISO 2022 IR 100\\ISO 2022 IR 144\\ISO 2022 IR 126",
		  B("Buc^J\xe9r\xf4me\\\x1b-F\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2\\\x1b-L\xbb\xee\xda" "ce\xdc\xd1yp\xd3"), 0, "Buc^Jérôme\\Διονυσιος\\Люкceмбypг" },
		/* Korean G1 reset by '\' then re-designated */
		{ "\\ISO 2022 IR 149", B("\x1b$)C\xb1\xe8\\\x1b$)C\xc8\xf1"), 0, "김\\희" },
	};
	check_table("reset", v, sizeof(v) / sizeof(v[0]));
}

/* ------------------------------------------- default repertoire */

Test(default_repertoire, ascii_and_fast_path)
{
	static const char *const sets[] = {
		NULL, "", " ", "ISO_IR 6", "ISO_IR 100", "ISO 2022 IR 13\\ISO 2022 IR 87",
		"ISO_IR 192", "GB18030", "GBK", "\\ISO 2022 IR 149", "ISO_IR 166",
	};
	size_t i;

	for (i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		check(sets[i] ? sets[i] : "(null)", sets[i], B("Doe^John=\\x\r\n"), 1,
		      "Doe^John=\\x\r\n");
		check("empty", sets[i], B(""), 1, "");
	}
}

Test(default_repertoire, high_bytes_without_a_g1_set)
{
	/* decision: valid UTF-8 is taken as UTF-8, anything else as Latin-1 */
	check("null latin1", NULL, B("Buc^J\xe9r\xf4me"), 1, "Buc^Jérôme");
	check("empty latin1", "", B("Buc^J\xe9r\xf4me"), 1, "Buc^Jérôme");
	check("IR 6 latin1", "ISO_IR 6", B("Buc^J\xe9r\xf4me"), 1, "Buc^Jérôme");
	check("IR 6 c1", "ISO_IR 6", B("\x80\xff"), 0, "\xc2\x80\xc3\xbf");
	check("latin1 not latin9", NULL, B("\xa4\xa6\xbd"), 0, "¤¦½");
	check("after reset", "\\ISO 2022 IR 203", B("\x1b-b\xa4^\xa4"), 1, "€^¤");
	check("null utf8", NULL, B("Buc^J\xc3\xa9r\xc3\xb4me"), 1, "Buc^Jérôme");
	check("IR 6 utf8", "ISO 2022 IR 6", B("\xe5\xb1\xb1"), 1, "山");
	/* with an escape sequence in the value the sniffing is off */
	check("esc latin1", "\\ISO 2022 IR 87", B("\xc3\xa9\x1b$B;3\x1b(B"), 0, "Ã©山");
}

Test(default_repertoire, lenient_term_spelling_and_undeclared_escapes)
{
	check("ISO IR 100", "ISO IR 100", B("J\xe9r\xf4me"), 1, "Jérôme");
	check("iso-ir 144", "iso-ir 144", B("\xbb\xee\xda"), 1, "Люк");
	check("ISO_2022_IR_126", "ISO_2022_IR_100\\ISO_2022_IR_126", B("\x1b-F\xc4"), 1, "Δ");
	/* a known escape sequence is honoured even if its term is not declared */
	check("undeclared", "ISO_IR 100", B("\xe9\x1b-F\xc4"), 1, "éΔ");
	/* declared sets, extra spaces */
	check("spaces", "  ISO_IR 100  ", B("\xe9"), 1, "é");
}

/* --------------------------------------------------------- errors */

Test(errors, invalid_utf8)
{
	static const struct {
		const char *b;
		size_t n;
	} bad[] = {
		{ B("Doe\xc3\x28") },          /* bad continuation */
		{ B("\xc0\xaf") },             /* overlong */
		{ B("\xe0\x80\xaf") },         /* overlong */
		{ B("\xed\xa0\x80") },         /* surrogate */
		{ B("\xf4\x90\x80\x80") },     /* > U+10FFFF */
		{ B("\xf5\x80\x80\x80") },
		{ B("\xe6\x9d") },             /* truncated */
		{ B("\x80") },                 /* lone continuation */
		{ B("SECRETNAME\xff") },
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char what[32];
		snprintf(what, sizeof(what), "bad utf8 #%zu", i);
		check_fail(what, "ISO_IR 192", bad[i].b, bad[i].n, 1, DIANA_EDICOM, "ISO_IR 192");
		/* PHI rule: the value never appears in the message */
		cr_expect_null(strstr(diana_error_message(), "SECRET"), "value in the message");
		cr_expect_null(strstr(diana_error_message(), "Doe"), "value in the message");
	}
}

Test(errors, undecodable_bytes)
{
	/* holes of the single-byte sets */
	check_fail("8859-3 A5", "ISO_IR 109", B("x\xa5"), 1, DIANA_EDICOM, "ISO_IR 109");
	check_fail("8859-7 FF", "ISO_IR 126", B("\xff"), 1, DIANA_EDICOM, "ISO_IR 126");
	check_fail("8859-6 A1", "ISO_IR 127", B("\xa1"), 1, DIANA_EDICOM, "ISO_IR 127");
	check_fail("TIS A0", "ISO_IR 166", B("\xa0"), 1, DIANA_EDICOM, "ISO_IR 166");
	check_fail("8859-8 ext", "\\ISO 2022 IR 138", B("\x1b-H\xc0"), 1, DIANA_EDICOM, "ISO_IR 138");
	/* double-byte sets */
	check_fail("ksc lone lead", "\\ISO 2022 IR 149", B("\x1b$)C\xb0"), 1, DIANA_EDICOM,
	           "IR 149");
	check_fail("ksc split by ^", "\\ISO 2022 IR 149", B("\x1b$)C\xb0^\xa1"), 1, DIANA_EDICOM,
	           "IR 149");
	check_fail("ksc across esc", "\\ISO 2022 IR 149", B("\x1b$)C\xb0\x1b$)C\xa1"), 1,
	           DIANA_EDICOM, "IR 149");
	check_fail("gb2312 lone", "\\ISO 2022 IR 58", B("\x1b$)A\xd5"), 1, DIANA_EDICOM, "IR 58");
	check_fail("jis odd", "\\ISO 2022 IR 87", B("\x1b$B;3E"), 1, DIANA_EDICOM, "IR 87");
	check_fail("jis pair broken", "\\ISO 2022 IR 87", B("\x1b$B;\r"), 0, DIANA_EDICOM, "IR 87");
	check_fail("jis 0212 odd", "\\ISO 2022 IR 159", B("\x1b$(Dl"), 1, DIANA_EDICOM, "IR 159");
	check_fail("jis unassigned", "\\ISO 2022 IR 87", B("\x1b$B\x29\x21"), 0, DIANA_EDICOM,
	           "ISO 2022 IR 13/87/159");
	check_fail("katakana range", "ISO 2022 IR 13", B("\xe0"), 1, DIANA_EDICOM, "IR 13");
	check_fail("gbk bad", "GBK", B("\x81\x20"), 1, DIANA_EDICOM, "GBK");
	check_fail("gb18030 trunc", "GB18030", B("\x94\x39\xfc"), 1, DIANA_EDICOM, "GB18030");
}

Test(errors, escape_sequences)
{
	check_fail("unknown", "\\ISO 2022 IR 87", B("a\x1b(Zb"), 1, DIANA_EDICOM,
	           "unknown escape sequence");
	check_fail("unknown G1", "\\ISO 2022 IR 87", B("\x1b$)Z\xb0\xa1"), 1, DIANA_EDICOM,
	           "unknown escape sequence");
	check_fail("truncated", "\\ISO 2022 IR 87", B("ab\x1b$"), 1, DIANA_EDICOM, "truncated");
	check_fail("lone esc", "\\ISO 2022 IR 87", B("ab\x1b"), 1, DIANA_EDICOM, "truncated");
}

Test(errors, unknown_terms)
{
	static const char *const bad[] = {
		"ISO_IR 999", "ISOIR 100", "ISO 2022 IR 100\\ISO 2022 IR 146", "UTF-8", "ISO_IR 87",
		"\\\\KOI8-R",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		check_fail(bad[i], bad[i], B("abc"), 1, DIANA_EUNSUPPORTED, "character set");
		cr_expect_eq(diana__charset_supported(bad[i]), 0, "%s supported", bad[i]);
	}
	check_fail("term named", "ISO_IR 999", B("abc"), 0, DIANA_EUNSUPPORTED, "'ISO_IR 999'");
	check_fail("later term", "ISO_IR 100\\ISO 2022 IR 146", B(""), 0, DIANA_EUNSUPPORTED,
	           "'ISO 2022 IR 146'");
}

Test(errors, invalid_arguments)
{
	char *out = (char *)"untouched";

	cr_assert_eq(diana__charset_to_utf8("ISO_IR 100", B("abc"), 0, NULL), DIANA_EINVAL);
	cr_assert_eq(diana__charset_to_utf8("ISO_IR 100", NULL, 3, 0, &out), DIANA_EINVAL);
	cr_assert_null(out);
	/* NULL with no bytes is an empty value */
	cr_assert_eq(diana__charset_to_utf8("ISO_IR 100", NULL, 0, 0, &out), 0);
	cr_assert_str_eq(out, "");
	free(out);
}

/* ------------------------------------------------------ supported */

Test(supported, defined_terms)
{
	static const char *const good[] = {
		NULL, "", "  ", "ISO_IR 6", "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110",
		"ISO_IR 144", "ISO_IR 127", "ISO_IR 126", "ISO_IR 138", "ISO_IR 148", "ISO_IR 203",
		"ISO_IR 13", "ISO_IR 166", "ISO_IR 192", "GB18030", "GBK ",
		"ISO 2022 IR 6", "ISO 2022 IR 100", "ISO 2022 IR 101", "ISO 2022 IR 109",
		"ISO 2022 IR 110", "ISO 2022 IR 144", "ISO 2022 IR 127", "ISO 2022 IR 126",
		"ISO 2022 IR 138", "ISO 2022 IR 148", "ISO 2022 IR 203", "ISO 2022 IR 13",
		"ISO 2022 IR 166", "\\ISO 2022 IR 87", "ISO 2022 IR 13\\ISO 2022 IR 87 ",
		"\\ISO 2022 IR 87\\ISO 2022 IR 159", "\\ISO 2022 IR 149", "\\ISO 2022 IR 58",
		"ISO 2022 IR 6\\ISO 2022 IR 100\\ISO 2022 IR 126", "iso ir 100", "ISO_IR 192\\",
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_expect_eq(diana__charset_supported(good[i]), 1, "%s", good[i] ? good[i] : "(null)");
}

/* ------------------------------------------------- scale, threads */

Test(scale, long_values)
{
	size_t reps = 100000, i;
	char *in = malloc(reps * 2 + 4), *out = NULL;

	cr_assert_not_null(in);
	/* Latin-2: one byte -> two */
	memset(in, 0xb3, reps);
	cr_assert_eq(diana__charset_to_utf8("ISO_IR 101", in, reps, 0, &out), 0);
	cr_assert_eq(strlen(out), reps * 2);
	for (i = 0; i < reps; i += 997)
		cr_assert_eq(memcmp(out + i * 2, "ł", 2), 0);
	free(out);
	/* Korean: two bytes -> three */
	memcpy(in, "\x1b$)C", 4);
	for (i = 0; i < reps; i++)
		memcpy(in + 4 + i * 2, "\xb1\xe8", 2);
	cr_assert_eq(diana__charset_to_utf8("\\ISO 2022 IR 149", in, reps * 2 + 4, 0, &out), 0);
	cr_assert_eq(strlen(out), reps * 3);
	for (i = 0; i < reps; i += 997)
		cr_assert_eq(memcmp(out + i * 3, "김", 3), 0);
	free(out);
	free(in);
}

static void *worker(void *arg)
{
	int i, bad = 0;
	size_t k;

	(void)arg;
	for (i = 0; i < 300; i++) {
		for (k = 0; k < N_FILE_VECS; k++) {
			const struct file_vec *v = &file_vecs[k];
			char *out = NULL;
			size_t n = v->len;
			while (n > 0 && v->bytes[n - 1] == ' ')
				n--;
			if (diana__charset_to_utf8(v->charset, v->bytes, n, 1, &out) != 0 ||
			    strcmp(out, v->expected) != 0)
				bad++;
			free(out);
		}
		/* errors are per thread */
		if (diana__charset_to_utf8("ISO_IR 192", B("\xff"), 0, &(char *){ NULL }) !=
		        DIANA_EDICOM ||
		    diana_error_code() != DIANA_EDICOM)
			bad++;
	}
	return (void *)(intptr_t)bad;
}

Test(threads, concurrent_conversions)
{
	pthread_t t[8];
	int i;

	for (i = 0; i < 8; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, worker, NULL), 0);
	for (i = 0; i < 8; i++) {
		void *r;
		cr_assert_eq(pthread_join(t[i], &r), 0);
		cr_expect_eq((intptr_t)r, 0, "thread %d saw %d wrong results", i, (int)(intptr_t)r);
	}
}
