/*
 * libdiana - DICOM Structured Reports holding a model's result (see sr.h
 * and doc/pipeline-sr.md).
 *
 * The report is assembled as DICOM JSON (PS3.18 Annex F) with cJSON, then
 * turned into a dataset by diana_dataset_from_json() and into Part 10
 * bytes by diana_dataset_save_memory(): no GDCM here.
 *
 * Shape (Comprehensive SR, 1.2.840.10008.5.1.4.1.1.88.33):
 *   SOP Common, Patient and General Study copied from the source instance
 *   (same Study Instance UID), SR Document Series (new series, "SR"),
 *   General Equipment ("libdiana"), SR Document General (evidence: the
 *   source series and instance), SR Document Content:
 *     CONTAINER (RESULT, 99DIANA, "AI result"), SEPARATE
 *       CONTAINS TEXT (121073, DCM, "Impression")   <- result.summary
 *       CONTAINS TEXT|CODE|NUM <name>                <- result.items[i]
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <diana/common.h>
#include <diana/dataset.h>

#include "../core/core.h"
#include "sr.h"

#define SR_CLASS_UID "1.2.840.10008.5.1.4.1.1.88.33"
#define SR_SERIES_NUMBER "9901"
#define SR_PRIVATE_SCHEME "99DIANA"
#define SR_UID_MAX 64

/* VR limits in characters (PS3.5 6.2) */
#define LEN_SH 16
#define LEN_LO 64
#define LEN_UT 0xFFFFFFFEu /* bytes */

/* --- small DICOM JSON builder with a sticky allocation failure ---------- */

typedef struct sr_bld {
	int oom;
} sr_bld;

static cJSON *add(sr_bld *b, cJSON *parent, const char *key, cJSON *item)
{
	if (!item) {
		b->oom = 1;
		return NULL;
	}
	if (!parent || !(key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item))) {
		cJSON_Delete(item);
		b->oom = 1;
		return NULL;
	}
	return item;
}

/* {"vr": vr} under "GGGGEEEE" */
static cJSON *elem(sr_bld *b, cJSON *obj, const char *tag, const char *vr)
{
	cJSON *e;

	if (!obj)
		return NULL;
	e = add(b, obj, tag, cJSON_CreateObject());
	if (e)
		add(b, e, "vr", cJSON_CreateString(vr));
	return e;
}

/* one text value; NULL or "" gives an empty element (Type 2) */
static void str(sr_bld *b, cJSON *obj, const char *tag, const char *vr, const char *value)
{
	cJSON *e = elem(b, obj, tag, vr), *arr;

	if (!e || !value || !*value)
		return;
	arr = add(b, e, "Value", cJSON_CreateArray());
	add(b, arr, NULL, cJSON_CreateString(value));
}

/* a sequence element; returns its "Value" array to which items are added */
static cJSON *seq(sr_bld *b, cJSON *obj, const char *tag)
{
	cJSON *e = elem(b, obj, tag, "SQ");

	return e ? add(b, e, "Value", cJSON_CreateArray()) : NULL;
}

static cJSON *item(sr_bld *b, cJSON *arr)
{
	return arr ? add(b, arr, NULL, cJSON_CreateObject()) : NULL;
}

/* one item of a code sequence (Basic Code Sequence Macro) */
static void code_seq(sr_bld *b, cJSON *obj, const char *tag, const char *value, const char *scheme,
                     const char *version, const char *meaning)
{
	cJSON *it = item(b, seq(b, obj, tag));

	str(b, it, "00080100", "SH", value);
	str(b, it, "00080102", "SH", scheme);
	if (version)
		str(b, it, "00080103", "SH", version);
	str(b, it, "00080104", "LO", meaning);
}

/* --- checks of the result ----------------------------------------------- */

/* number of characters of valid UTF-8 text, or -1 */
static long utf8_chars(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	long n = 0;

	while (*p) {
		unsigned c = *p;
		int k;
		unsigned cp;
		if (c < 0x80) {
			p++;
			n++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			k = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			k = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			k = 3;
			cp = c & 0x07;
		} else {
			return -1;
		}
		for (int i = 1; i <= k; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return -1;
			cp = (cp << 6) | (p[i] & 0x3F);
		}
		if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			return -1;
		p += k + 1;
		n++;
	}
	return n;
}

/*
 * Text for an SH/LO (max_chars) or UT (max_chars 0) element: valid UTF-8,
 * not empty, within the limit; SH/LO without control characters or '\'
 * (the value delimiter). Returns NULL when fine, else the reason.
 */
static const char *bad_str(const char *s, size_t max_chars)
{
	long n = utf8_chars(s);

	if (n < 0)
		return "not valid UTF-8";
	if (n == 0)
		return "empty";
	if (max_chars == 0)
		return strlen(s) > LEN_UT ? "too long" : NULL;
	if ((size_t)n > max_chars)
		return max_chars == LEN_SH ? "longer than 16 characters" : "longer than 64 characters";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7F || *p == '\\')
			return "holds a control character or '\\'";
	return NULL;
}

static const char *bad_text(const cJSON *v, size_t max_chars)
{
	if (!cJSON_IsString(v) || !v->valuestring)
		return "not a string";
	return bad_str(v->valuestring, max_chars);
}

static int refuse(const char *where, const char *field, const char *why)
{
	return diana__error_set(DIANA_EINVAL, "result%s%s%s: %s", where, *field ? "." : "", field, why);
}

/* a code {"value","scheme","meaning"[,"version"]} */
static int check_code(const cJSON *c, const char *where, const char *field)
{
	static const struct {
		const char *key;
		size_t max;
	} parts[] = { { "value", LEN_SH }, { "scheme", LEN_SH }, { "meaning", LEN_LO } };
	char sub[64];
	const cJSON *v;
	const char *why;

	if (!cJSON_IsObject(c))
		return refuse(where, field, "not a string or code object");
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		snprintf(sub, sizeof sub, "%s.%s", field, parts[i].key);
		why = bad_text(cJSON_GetObjectItemCaseSensitive(c, parts[i].key), parts[i].max);
		if (why)
			return refuse(where, sub, cJSON_GetObjectItemCaseSensitive(c, parts[i].key) ? why : "missing");
	}
	v = cJSON_GetObjectItemCaseSensitive(c, "version");
	if (v && !cJSON_IsNull(v) && (why = bad_text(v, LEN_SH)) != NULL) {
		snprintf(sub, sizeof sub, "%s.version", field);
		return refuse(where, sub, why);
	}
	return 0;
}

static void add_code(sr_bld *b, cJSON *obj, const char *tag, const cJSON *c)
{
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(c, "version");

	code_seq(b, obj, tag, cJSON_GetObjectItemCaseSensitive(c, "value")->valuestring,
	         cJSON_GetObjectItemCaseSensitive(c, "scheme")->valuestring,
	         cJSON_IsString(ver) ? ver->valuestring : NULL,
	         cJSON_GetObjectItemCaseSensitive(c, "meaning")->valuestring);
}

/*
 * Private code of a plain name: "N-" + 14 upper-case hex digits of
 * SHA-256(name), so one name always gets the same code (queries over many
 * reports), and the name itself is the Code Meaning.
 */
static void name_code(const char *name, char out[LEN_SH + 1])
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char h[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)name, strlen(name), h);
	out[0] = 'N';
	out[1] = '-';
	for (int i = 0; i < 7; i++) {
		out[2 + 2 * i] = hex[h[i] >> 4];
		out[3 + 2 * i] = hex[h[i] & 15];
	}
	out[LEN_SH] = 0;
}

/* Concept Name Code Sequence from a name string or code object */
static int concept_name(sr_bld *b, cJSON *obj, const cJSON *name, const char *where)
{
	const char *why;
	char code[LEN_SH + 1];
	int rc;

	if (!name)
		return refuse(where, "name", "missing");
	if (cJSON_IsString(name)) {
		if ((why = bad_text(name, LEN_LO)) != NULL)
			return refuse(where, "name", why);
		name_code(name->valuestring, code);
		code_seq(b, obj, "0040A043", code, SR_PRIVATE_SCHEME, NULL, name->valuestring);
		return 0;
	}
	if ((rc = check_code(name, where, "name")) < 0)
		return rc;
	add_code(b, obj, "0040A043", name);
	return 0;
}

/* %.*g with a short exponent ("e+05" -> "e5", "e-05" -> "e-5") */
static void ds_g(char out[32], int p, double d)
{
	char *e, *w;

	/* at most 24 characters for p <= 17; the check keeps GCC's range analysis quiet */
	if (snprintf(out, 32, "%.*g", p, d) >= 32)
		out[31] = 0;
	e = strchr(out, 'e');
	if (!e)
		return;
	w = e + 1;
	if (*w == '-')
		w++;
	const char *r = e + 1;
	if (*r == '+' || *r == '-')
		r++;
	while (*r == '0' && r[1])
		r++;
	memmove(w, r, strlen(r) + 1);
}

/* DS text of a finite double: the shortest that reads back the same,
 * else the most precise that fits 16 characters */
static void format_ds(double d, char out[32])
{
	int p;

	for (p = 1; p <= 17; p++) {
		ds_g(out, p, d);
		if (strtod(out, NULL) == d)
			break;
	}
	if (p > 17)
		p = 17;
	while (strlen(out) > 16 && p > 1)
		ds_g(out, --p, d);
}

/* one content item of result.items[i] */
static int content_item(sr_bld *b, cJSON *arr, const cJSON *in, size_t i)
{
	char where[48];
	const cJSON *type, *v;
	const char *why;
	cJSON *it;
	int rc;

	snprintf(where, sizeof where, ".items[%zu]", i);
	if (!cJSON_IsObject(in))
		return refuse(where, "", "not an object");
	type = cJSON_GetObjectItemCaseSensitive(in, "type");
	if (!cJSON_IsString(type))
		return refuse(where, "type", type ? "not a string" : "missing");
	if (strcmp(type->valuestring, "text") && strcmp(type->valuestring, "code") && strcmp(type->valuestring, "num"))
		return refuse(where, "type", "not one of text, code, num");

	it = item(b, arr);
	str(b, it, "0040A010", "CS", "CONTAINS");
	if ((rc = concept_name(b, it, cJSON_GetObjectItemCaseSensitive(in, "name"), where)) < 0)
		return rc;

	if (!strcmp(type->valuestring, "text")) {
		v = cJSON_GetObjectItemCaseSensitive(in, "value");
		if ((why = bad_text(v, 0)) != NULL)
			return refuse(where, "value", v ? why : "missing");
		str(b, it, "0040A040", "CS", "TEXT");
		str(b, it, "0040A160", "UT", v->valuestring);
	} else if (!strcmp(type->valuestring, "code")) {
		v = cJSON_GetObjectItemCaseSensitive(in, "code");
		if (!v)
			return refuse(where, "code", "missing");
		if ((rc = check_code(v, where, "code")) < 0)
			return rc;
		str(b, it, "0040A040", "CS", "CODE");
		add_code(b, it, "0040A168", v);
	} else {
		const cJSON *unit = cJSON_GetObjectItemCaseSensitive(in, "unit");
		char ds[32];
		cJSON *mv;
		v = cJSON_GetObjectItemCaseSensitive(in, "value");
		if (!cJSON_IsNumber(v))
			return refuse(where, "value", v ? "not a number" : "missing");
		if (!isfinite(v->valuedouble))
			return refuse(where, "value", "not finite");
		if (unit && !cJSON_IsNull(unit) && (why = bad_text(unit, LEN_SH)) != NULL)
			return refuse(where, "unit", why);
		format_ds(v->valuedouble, ds);
		str(b, it, "0040A040", "CS", "NUM");
		mv = item(b, seq(b, it, "0040A300"));
		if (cJSON_IsString(unit))
			code_seq(b, mv, "004008EA", unit->valuestring, "UCUM", NULL, unit->valuestring);
		else /* no unit: UCUM "1", as PS3.16 codes dimensionless values */
			code_seq(b, mv, "004008EA", "1", "UCUM", NULL, "no units");
		str(b, mv, "0040A30A", "DS", ds);
	}
	return 0;
}

/* --- UIDs and times ------------------------------------------------------- */

/* a root usable for new UIDs: digits and dots, no empty component, no
 * leading zero, short enough to leave 20 random digits */
static int check_root(const char *root)
{
	size_t n = strlen(root);
	int start = 1;

	if (n == 0 || n > SR_UID_MAX - 21)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = root[i];
		if (c == '.') {
			if (start)
				return -1;
			start = 1;
		} else if (c >= '0' && c <= '9') {
			if (start && c == '0' && i + 1 < n && root[i + 1] != '.')
				return -1;
			start = 0;
		} else {
			return -1;
		}
	}
	return start ? -1 : 0;
}

/*
 * New UID: "2.25." + decimal of a random (version 4) UUID (PS3.5 B.2), or
 * root + "." + random decimal digits filling up to 64 characters.
 */
static int new_uid(const char *root, char out[SR_UID_MAX + 1])
{
	unsigned char r[16];
	char dec[48];

	if (RAND_bytes(r, sizeof r) != 1)
		return diana__error_set(DIANA_ERROR, "no random bytes for a UID");
	if (!root) {
		r[6] = (unsigned char)((r[6] & 0x0F) | 0x40);
		r[8] = (unsigned char)((r[8] & 0x3F) | 0x80);
		diana__decimal128(r, dec);
		snprintf(out, SR_UID_MAX + 1, "2.25.%s", dec);
	} else {
		size_t room = SR_UID_MAX - strlen(root) - 1;
		r[0] |= 0x80; /* 39 digits */
		diana__decimal128(r, dec);
		if (strlen(dec) > room)
			dec[room] = 0;
		snprintf(out, SR_UID_MAX + 1, "%s.%s", root, dec);
	}
	return 0;
}

/* --- copies from the source instance --------------------------------------- */

/* the source's value as DICOM JSON: multiple values split on '\', PN
 * component groups on '='; absent or empty -> an empty element */
static int copy(sr_bld *b, cJSON *obj, const diana_dataset *study, const char *key, const char *tag,
                const char *vr, int type2)
{
	char *v = NULL;
	cJSON *e, *arr;
	int rc = diana_dataset_get(study, key, &v);

	if (rc == DIANA_ENOTFOUND) {
		if (type2)
			elem(b, obj, tag, vr);
		return 0;
	}
	if (rc < 0)
		return rc;
	e = elem(b, obj, tag, vr);
	if (!*v || !e) {
		diana_free(v);
		return 0;
	}
	arr = add(b, e, "Value", cJSON_CreateArray());
	for (char *tok = v, *next; tok && arr; tok = next) {
		next = strchr(tok, '\\');
		if (next)
			*next++ = 0;
		if (!strcmp(vr, "PN")) {
			static const char *groups[3] = { "Alphabetic", "Ideographic", "Phonetic" };
			cJSON *pn = add(b, arr, NULL, cJSON_CreateObject());
			char *g = tok;
			for (int k = 0; k < 3 && g; k++) {
				char *gn = strchr(g, '=');
				if (gn)
					*gn++ = 0;
				if (*g)
					add(b, pn, groups[k], cJSON_CreateString(g));
				g = gn;
			}
		} else {
			add(b, arr, NULL, *tok ? cJSON_CreateString(tok) : cJSON_CreateNull());
		}
	}
	diana_free(v);
	return 0;
}

/* a UI value of the source, or NULL (ENOTFOUND, empty) */
static int get_uid(const diana_dataset *study, const char *key, char **out)
{
	int rc = diana_dataset_get(study, key, out);

	if (rc == DIANA_ENOTFOUND) {
		*out = NULL;
		return 0;
	}
	if (rc < 0)
		return rc;
	if (!**out) {
		diana_free(*out);
		*out = NULL;
	}
	return 0;
}

/* --- the report ------------------------------------------------------------- */

static int build(sr_bld *b, cJSON *ds, const diana_dataset *study, const cJSON *result, const diana__sr_options *o)
{
	static const struct {
		const char *key, *tag, *vr;
		int type2;
	} copied[] = {
		/* Patient */
		{ "PatientName", "00100010", "PN", 1 },
		{ "PatientID", "00100020", "LO", 1 },
		{ "IssuerOfPatientID", "00100021", "LO", 0 },
		{ "PatientBirthDate", "00100030", "DA", 1 },
		{ "PatientSex", "00100040", "CS", 1 },
		/* General Study (Study Instance UID apart) */
		{ "StudyDate", "00080020", "DA", 1 },
		{ "StudyTime", "00080030", "TM", 1 },
		{ "AccessionNumber", "00080050", "SH", 1 },
		{ "ReferringPhysicianName", "00080090", "PN", 1 },
		{ "StudyDescription", "00081030", "LO", 0 },
		{ "StudyID", "00200010", "SH", 1 },
	};
	char sop_uid[SR_UID_MAX + 1], series_uid[SR_UID_MAX + 1], date[16], time_[16], tz[8], desc[256];
	char *study_uid = NULL, *src_series = NULL, *src_class = NULL, *src_inst = NULL;
	const cJSON *summary, *items, *complete;
	const char *why;
	cJSON *content;
	struct timespec ts;
	struct tm tm;
	int rc;

	/* the result first: refusals before any work */
	if (!cJSON_IsObject(result))
		return diana__error_set(DIANA_EINVAL, "result is not a JSON object");
	summary = cJSON_GetObjectItemCaseSensitive(result, "summary");
	if (cJSON_IsNull(summary) || (cJSON_IsString(summary) && !*summary->valuestring))
		summary = NULL; /* "summary": "" or null: no summary */
	if (summary && (why = bad_text(summary, 0)) != NULL)
		return refuse("", "summary", why);
	items = cJSON_GetObjectItemCaseSensitive(result, "items");
	if (cJSON_IsNull(items))
		items = NULL;
	if (items && !cJSON_IsArray(items))
		return refuse("", "items", "not an array");
	complete = cJSON_GetObjectItemCaseSensitive(result, "complete");
	if (complete && !cJSON_IsNull(complete) && !cJSON_IsBool(complete))
		return refuse("", "complete", "not a boolean");

	/* options */
	if (o && o->uid_root && check_root(o->uid_root) < 0)
		return diana__error_set(DIANA_EINVAL, "options.uid_root: not a UID root of at most %d characters",
		                        SR_UID_MAX - 21);
	if (o && o->model_name && (why = bad_str(o->model_name, LEN_LO)) != NULL)
		return diana__error_set(DIANA_EINVAL, "options.model_name: %s", why);
	if (o && o->series_description && o->series_description[0] &&
	    (why = bad_str(o->series_description, LEN_LO)) != NULL)
		return diana__error_set(DIANA_EINVAL, "options.series_description: %s", why);

	/* source references */
	if ((rc = get_uid(study, "StudyInstanceUID", &study_uid)) < 0)
		goto done;
	if (!study_uid) {
		rc = diana__error_set(DIANA_EINVAL, "the source has no Study Instance UID");
		goto done;
	}
	if ((rc = get_uid(study, "SeriesInstanceUID", &src_series)) < 0 ||
	    (rc = get_uid(study, "SOPClassUID", &src_class)) < 0 ||
	    (rc = get_uid(study, "SOPInstanceUID", &src_inst)) < 0)
		goto done;

	if ((rc = new_uid(o ? o->uid_root : NULL, series_uid)) < 0 ||
	    (rc = new_uid(o ? o->uid_root : NULL, sop_uid)) < 0)
		goto done;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(date, sizeof date, "%Y%m%d", &tm);
	strftime(time_, sizeof time_, "%H%M%S", &tm);
	{
		long off = tm.tm_gmtoff / 60;
		snprintf(tz, sizeof tz, "%c%02ld%02ld", off < 0 ? '-' : '+', labs(off) / 60 % 100, labs(off) % 60);
	}

	/* SOP Common */
	str(b, ds, "00080005", "CS", "ISO_IR 192");
	str(b, ds, "00080012", "DA", date);
	str(b, ds, "00080013", "TM", time_);
	str(b, ds, "00080016", "UI", SR_CLASS_UID);
	str(b, ds, "00080018", "UI", sop_uid);
	{
		cJSON *cs = item(b, seq(b, ds, "00080110"));
		str(b, cs, "00080102", "SH", SR_PRIVATE_SCHEME);
		str(b, cs, "00080115", "ST", "libdiana private codes");
		str(b, cs, "00080116", "ST", "libdiana");
	}
	str(b, ds, "00080201", "SH", tz);

	/* Patient, General Study */
	for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++)
		if ((rc = copy(b, ds, study, copied[i].key, copied[i].tag, copied[i].vr, copied[i].type2)) < 0)
			goto done;
	str(b, ds, "0020000D", "UI", study_uid);

	/* SR Document Series */
	str(b, ds, "00080060", "CS", "SR");
	str(b, ds, "00080021", "DA", date);
	str(b, ds, "00080031", "TM", time_);
	if (o && o->series_description && o->series_description[0]) {
		snprintf(desc, sizeof desc, "%s", o->series_description);
	} else if (o && o->model_name) {
		/* "DIANA <model>", cut to 64 characters on a character boundary */
		size_t n = 0, chars = 0;
		snprintf(desc, sizeof desc, "DIANA %s", o->model_name);
		while (desc[n] && chars < LEN_LO) {
			n++;
			while ((desc[n] & 0xC0) == 0x80)
				n++;
			chars++;
		}
		desc[n] = 0;
	} else {
		snprintf(desc, sizeof desc, "DIANA AI result");
	}
	str(b, ds, "0008103E", "LO", desc);
	elem(b, ds, "00081111", "SQ"); /* Referenced Performed Procedure Step: Type 2, empty */
	str(b, ds, "0020000E", "UI", series_uid);
	str(b, ds, "00200011", "IS", SR_SERIES_NUMBER);

	/* General Equipment */
	str(b, ds, "00080070", "LO", "libdiana");
	if (o && o->model_name)
		str(b, ds, "00081090", "LO", o->model_name);

	/* SR Document General */
	str(b, ds, "00200013", "IS", "1");
	str(b, ds, "00080023", "DA", date);
	str(b, ds, "00080033", "TM", time_);
	str(b, ds, "0040A491", "CS", cJSON_IsFalse(complete) ? "PARTIAL" : "COMPLETE");
	str(b, ds, "0040A493", "CS", "UNVERIFIED");
	elem(b, ds, "0040A372", "SQ"); /* Performed Procedure Code: Type 2, empty */
	if (src_series && src_class && src_inst) {
		/* Hierarchical SOP Instance Reference Macro: study > series > instance */
		cJSON *st = item(b, seq(b, ds, "0040A375"));
		cJSON *se = item(b, seq(b, st, "00081115"));
		cJSON *in = item(b, seq(b, se, "00081199"));
		str(b, st, "0020000D", "UI", study_uid);
		str(b, se, "0020000E", "UI", src_series);
		str(b, in, "00081150", "UI", src_class);
		str(b, in, "00081155", "UI", src_inst);
	}

	/* SR Document Content: the root container */
	str(b, ds, "0040A040", "CS", "CONTAINER");
	code_seq(b, ds, "0040A043", "RESULT", SR_PRIVATE_SCHEME, NULL, "AI result");
	str(b, ds, "0040A050", "CS", "SEPARATE");
	if (summary || cJSON_GetArraySize(items) > 0) {
		content = seq(b, ds, "0040A730");
		if (summary) {
			cJSON *it = item(b, content);
			str(b, it, "0040A010", "CS", "CONTAINS");
			str(b, it, "0040A040", "CS", "TEXT");
			code_seq(b, it, "0040A043", "121073", "DCM", NULL, "Impression");
			str(b, it, "0040A160", "UT", summary->valuestring);
		}
		size_t i = 0;
		for (const cJSON *in = items ? items->child : NULL; in; in = in->next, i++)
			if ((rc = content_item(b, content, in, i)) < 0)
				goto done;
	}
	rc = b->oom ? diana__error_oom() : 0;
done:
	diana_free(study_uid);
	diana_free(src_series);
	diana_free(src_class);
	diana_free(src_inst);
	return rc;
}

int diana__sr_build(const diana_dataset *study, const struct cJSON *result, const diana__sr_options *o,
                    uint8_t **out, size_t *len)
{
	sr_bld b = { 0 };
	diana_dataset *sr = NULL;
	cJSON *ds;
	char *text;
	int rc;

	if (out)
		*out = NULL;
	if (len)
		*len = 0;
	if (!study || !out || !len)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	ds = cJSON_CreateObject();
	if (!ds)
		return diana__error_oom();
	rc = build(&b, ds, study, result, o);
	if (rc < 0) {
		cJSON_Delete(ds);
		return rc;
	}
	text = cJSON_PrintUnformatted(ds);
	cJSON_Delete(ds);
	if (!text)
		return diana__error_oom();
	rc = diana_dataset_from_json(&sr, text, strlen(text));
	cJSON_free(text);
	if (rc < 0)
		return rc;
	rc = diana_dataset_save_memory(sr, out, len);
	diana_dataset_free(sr);
	return rc;
}
