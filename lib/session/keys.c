/*
 * libdiana - query keys of sessions: "Name=Value" strings -> tags with
 * dictionary VRs -> identifiers (datasets), answers built from Orthanc's
 * tag/string JSON, and DICOM attribute matching (PS3.4 C.2.2.2) for the
 * kinds that match locally.
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "session.h"
#include "../dicom/dicom.h"

const char *diana__level_name(int level)
{
	switch (level) {
	case DIANA_LEVEL_PATIENT:
		return "PATIENT";
	case DIANA_LEVEL_STUDY:
		return "STUDY";
	case DIANA_LEVEL_SERIES:
		return "SERIES";
	case DIANA_LEVEL_INSTANCE:
		return "IMAGE";
	default:
		return NULL;
	}
}

uint32_t diana__level_uid_tag(int level)
{
	switch (level) {
	case DIANA_LEVEL_PATIENT:
		return 0x00100020;
	case DIANA_LEVEL_STUDY:
		return 0x0020000D;
	case DIANA_LEVEL_SERIES:
		return 0x0020000E;
	case DIANA_LEVEL_INSTANCE:
		return 0x00080018;
	default:
		return 0;
	}
}

/* "0010,0010", "(0010,0010)", "00100010" -> tag */
static int parse_tag(const char *s, size_t n, uint32_t *tag)
{
	char hex[9];
	size_t i, j = 0;

	if (n >= 2 && s[0] == '(' && s[n - 1] == ')') {
		s++;
		n -= 2;
	}
	if (n == 9 && s[4] == ',') {
		for (i = 0; i < 9; i++) {
			if (i != 4)
				hex[j++] = s[i];
		}
	} else if (n == 8) {
		memcpy(hex, s, 8);
		j = 8;
	} else {
		return 0;
	}
	hex[8] = '\0';
	for (i = 0; i < 8; i++) {
		if (!isxdigit((unsigned char)hex[i]))
			return 0;
	}
	*tag = (uint32_t)strtoul(hex, NULL, 16);
	return 1;
}

static int name_to_tag(const char *name, size_t n, uint32_t *tag)
{
	char kw[128];

	if (parse_tag(name, n, tag))
		return 0;
	if (n == 0 || n >= sizeof(kw))
		return DIANA_ENOTFOUND;
	memcpy(kw, name, n);
	kw[n] = '\0';
	return diana__dict_lookup(kw, tag) == 0 ? 0 : DIANA_ENOTFOUND;
}

void diana__keys_dispose(diana__keys *k)
{
	size_t i;
	if (!k)
		return;
	for (i = 0; i < k->n; i++)
		free(k->v[i].value);
	free(k->v);
	k->v = NULL;
	k->n = 0;
}

const diana__key *diana__keys_get(const diana__keys *k, uint32_t tag)
{
	size_t i;
	for (i = 0; i < k->n; i++) {
		if (k->v[i].tag == tag)
			return &k->v[i];
	}
	return NULL;
}

static int keys_put(diana__keys *k, uint32_t tag, const char *value, size_t vlen)
{
	diana__key *slot = (diana__key *)diana__keys_get(k, tag);
	char *v = diana__strndup(value, vlen);

	if (!v)
		return DIANA_ENOMEM;
	if (!slot) {
		diana__key *nv = realloc(k->v, (k->n + 1) * sizeof(*nv));
		if (!nv) {
			free(v);
			return diana__error_oom();
		}
		k->v = nv;
		slot = &k->v[k->n++];
		memset(slot, 0, sizeof(*slot));
		slot->tag = tag;
		diana__dict_vr(tag, slot->vr);
		slot->keyword = diana__dict_keyword(tag);
	} else {
		free(slot->value);
	}
	slot->value = v;
	return 0;
}

int diana__keys_set(diana__keys *k, uint32_t tag, const char *value)
{
	return keys_put(k, tag, value ? value : "", value ? strlen(value) : 0);
}

int diana__keys_add_return(diana__keys *k, uint32_t tag)
{
	if (diana__keys_get(k, tag))
		return 0;
	return keys_put(k, tag, "", 0);
}

int diana__keys_parse(const char *const *keys, size_t n, diana__keys *out)
{
	size_t i;

	out->v = NULL;
	out->n = 0;
	if (n && !keys)
		return diana__error_set(DIANA_EINVAL, "query keys: NULL array");
	for (i = 0; i < n; i++) {
		const char *s = keys[i], *eq;
		size_t nlen;
		uint32_t tag;
		int rc;

		if (!s) {
			diana__keys_dispose(out);
			return diana__error_set(DIANA_EINVAL, "query key %zu is NULL", i);
		}
		eq = strchr(s, '=');
		nlen = eq ? (size_t)(eq - s) : strlen(s);
		while (nlen > 0 && s[nlen - 1] == ' ')
			nlen--;
		if (name_to_tag(s, nlen, &tag) < 0) {
			diana__keys_dispose(out);
			/* the name only: values may be patient data */
			return diana__error_set(DIANA_EINVAL, "query key '%.*s': not a DICOM keyword or tag",
			                        (int)(nlen > 64 ? 64 : nlen), s);
		}
		if ((tag >> 16) == 0x0002 || (tag & 0xFFFF) == 0 || tag == 0x7FE00010) {
			diana__keys_dispose(out);
			return diana__error_set(DIANA_EINVAL, "query key '%.*s' cannot be a query key",
			                        (int)(nlen > 64 ? 64 : nlen), s);
		}
		rc = eq ? keys_put(out, tag, eq + 1, strlen(eq + 1)) : keys_put(out, tag, "", 0);
		if (rc < 0) {
			diana__keys_dispose(out);
			return rc;
		}
	}
	return 0;
}

/* ------------------------------------------------------- DICOM JSON build */

static int vr_is(const char *vr, const char *list)
{
	const char *p;
	for (p = list; *p; p += 3) {
		if (p[0] == vr[0] && p[1] == vr[1])
			return 1;
		if (!p[2])
			break;
	}
	return 0;
}

#define NUMERIC_VRS "IS DS FL FD SL SS UL US SV UV"

/* one value string -> a JSON value for `vr`; NULL when it cannot be typed */
static cJSON *json_value(const char *vr, const char *s, size_t n)
{
	char tmp[128];

	if (vr_is(vr, NUMERIC_VRS)) {
		char *end;
		double d;
		while (n > 0 && s[0] == ' ') {
			s++;
			n--;
		}
		while (n > 0 && s[n - 1] == ' ')
			n--;
		if (n == 0)
			return cJSON_CreateNull();
		if (n >= sizeof(tmp))
			return NULL;
		memcpy(tmp, s, n);
		tmp[n] = '\0';
		errno = 0;
		d = strtod(tmp, &end);
		if (*end || errno)
			return NULL;
		return cJSON_CreateNumber(d);
	}
	if (vr[0] == 'P' && vr[1] == 'N') {
		cJSON *o = cJSON_CreateObject();
		char *v = diana__strndup(s, n);
		if (!o || !v || !cJSON_AddStringToObject(o, "Alphabetic", v)) {
			cJSON_Delete(o);
			free(v);
			return NULL;
		}
		free(v);
		return o;
	}
	{
		char *v = diana__strndup(s, n);
		cJSON *j = v ? cJSON_CreateString(v) : NULL;
		free(v);
		return j;
	}
}

/* add element `tag` with `vr` and text `value` (values split on '\') to obj */
static int add_element(cJSON *obj, uint32_t tag, const char *vr, const char *value, int strict)
{
	char key[9];
	cJSON *el, *arr = NULL;

	snprintf(key, sizeof(key), "%08X", (unsigned)tag);
	if (vr_is(vr, "OB OD OF OL OV OW"))
		return 0; /* no binary values in identifiers and answers */
	if (vr[0] == 'U' && vr[1] == 'N') {
		if (strict)
			return diana__error_set(DIANA_EINVAL, "query key %04X,%04X: unknown VR (not in the dictionary)",
			                        (unsigned)(tag >> 16), (unsigned)(tag & 0xFFFF));
		return 0;
	}
	el = cJSON_CreateObject();
	if (!el)
		return diana__error_oom();
	if (!cJSON_AddStringToObject(el, "vr", vr))
		goto oom;
	if (value && *value) {
		const char *p = value;
		arr = cJSON_AddArrayToObject(el, "Value");
		if (!arr)
			goto oom;
		for (;;) {
			size_t len = strcspn(p, "\\");
			cJSON *v;
			/* LT, ST, UT, UR are single-valued: a backslash is text there */
			if (vr_is(vr, "LT ST UT UR"))
				len = strlen(p);
			v = json_value(vr, p, len);
			if (!v) {
				cJSON_Delete(el);
				if (strict)
					return diana__error_set(DIANA_EINVAL,
					                        "query key %04X,%04X: not a valid %s value",
					                        (unsigned)(tag >> 16), (unsigned)(tag & 0xFFFF), vr);
				return 0; /* answers: leave out what cannot be typed */
			}
			cJSON_AddItemToArray(arr, v);
			if (!p[len])
				break;
			p += len + 1;
		}
	}
	cJSON_AddItemToObject(obj, key, el);
	return 0;
oom:
	cJSON_Delete(el);
	return diana__error_oom();
}

static int json_to_dataset(cJSON *root, diana_dataset **out)
{
	char *text = cJSON_PrintUnformatted(root);
	int rc;

	if (!text)
		return diana__error_oom();
	rc = diana_dataset_from_json(out, text, strlen(text));
	cJSON_free(text);
	return rc;
}

int diana__keys_to_dataset(const diana__keys *k, diana_dataset **out)
{
	cJSON *root = cJSON_CreateObject();
	size_t i;
	int rc = 0;

	*out = NULL;
	if (!root)
		return diana__error_oom();
	for (i = 0; i < k->n && rc == 0; i++)
		rc = add_element(root, k->v[i].tag, k->v[i].vr, k->v[i].value, 1);
	if (rc == 0)
		rc = json_to_dataset(root, out);
	cJSON_Delete(root);
	return rc;
}

static int add_from_tag_strings(cJSON *dst, const cJSON *obj, int depth)
{
	const cJSON *it;

	if (depth > 8)
		return 0;
	cJSON_ArrayForEach(it, obj)
	{
		uint32_t tag;
		char vr[3];
		int rc;

		if (!it->string || name_to_tag(it->string, strlen(it->string), &tag) < 0)
			continue; /* e.g. Orthanc's own fields */
		if ((tag & 0xFFFF) == 0 || (tag >> 16) == 0x0002)
			continue;
		diana__dict_vr(tag, vr);
		if (cJSON_IsArray(it)) {
			/* a sequence: array of objects */
			char key[9];
			cJSON *el, *items, *item;
			const cJSON *src;
			snprintf(key, sizeof(key), "%08X", (unsigned)tag);
			el = cJSON_CreateObject();
			if (!el || !cJSON_AddStringToObject(el, "vr", "SQ") ||
			    !(items = cJSON_AddArrayToObject(el, "Value"))) {
				cJSON_Delete(el);
				return diana__error_oom();
			}
			cJSON_ArrayForEach(src, it)
			{
				if (!cJSON_IsObject(src))
					continue;
				item = cJSON_CreateObject();
				if (!item) {
					cJSON_Delete(el);
					return diana__error_oom();
				}
				cJSON_AddItemToArray(items, item);
				rc = add_from_tag_strings(item, src, depth + 1);
				if (rc < 0) {
					cJSON_Delete(el);
					return rc;
				}
			}
			cJSON_AddItemToObject(dst, key, el);
			continue;
		}
		if (cJSON_IsNull(it)) {
			rc = add_element(dst, tag, vr, "", 0);
		} else if (cJSON_IsString(it)) {
			rc = add_element(dst, tag, vr, it->valuestring, 0);
		} else if (cJSON_IsObject(it) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "Value"))) {
			/* Orthanc's full format: {"Name","Type","Value"} */
			rc = add_element(dst, tag, vr, cJSON_GetObjectItemCaseSensitive(it, "Value")->valuestring, 0);
		} else if (cJSON_IsObject(it) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(it, "Value"))) {
			cJSON *wrap = cJSON_CreateObject();
			if (!wrap)
				return diana__error_oom();
			cJSON_AddItemReferenceToObject(wrap, it->string,
			                               cJSON_GetObjectItemCaseSensitive(it, "Value"));
			rc = add_from_tag_strings(dst, wrap, depth);
			cJSON_Delete(wrap);
		} else {
			continue;
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int diana__answer_from_tag_strings(const cJSON *obj, diana_dataset **out)
{
	cJSON *root;
	int rc;

	*out = NULL;
	if (!cJSON_IsObject(obj))
		return diana__error_set(DIANA_EDICOM, "answer is not a JSON object");
	root = cJSON_CreateObject();
	if (!root)
		return diana__error_oom();
	rc = add_from_tag_strings(root, obj, 0);
	if (rc == 0)
		rc = json_to_dataset(root, out);
	cJSON_Delete(root);
	return rc;
}

/* ---------------------------------------------------------------- matching */

static int glob_match(const char *pat, const char *s, int fold)
{
	/* iterative '*' / '?' matcher with backtracking to the last star */
	const char *star = NULL, *resume = NULL;

	while (*s) {
		if (*pat == '*') {
			star = pat++;
			resume = s;
		} else if (*pat == '?' ||
		           (fold ? tolower((unsigned char)*pat) == tolower((unsigned char)*s) : *pat == *s)) {
			pat++;
			s++;
		} else if (star) {
			pat = star + 1;
			s = ++resume;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

static char *trimmed(const char *s, size_t n)
{
	while (n > 0 && s[0] == ' ') {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\0'))
		n--;
	return diana__strndup(s, n);
}

/* one element value (single) against one key value (single) */
static int match_one(const diana__key *key, const char *kv, const char *v)
{
	int is_pn = key->vr[0] == 'P' && key->vr[1] == 'N';
	int is_range = (vr_is(key->vr, "DA TM DT")) && strchr(kv, '-') != NULL;

	if (!*v)
		return 0; /* an empty value matches only universal matching (handled by the caller) */
	if (is_range) {
		const char *dash = strchr(kv, '-');
		size_t lo_n = (size_t)(dash - kv);
		const char *hi = dash + 1;
		/* compare on the common prefix length of the formats (YYYYMMDD, HHMMSS...) */
		if (lo_n > 0 && strncmp(v, kv, lo_n) < 0)
			return 0;
		if (*hi && strncmp(v, hi, strlen(hi)) > 0)
			return 0;
		return 1;
	}
	if (strchr(kv, '*') || strchr(kv, '?'))
		return glob_match(kv, v, is_pn);
	if (is_pn) {
		/* trailing empty components do not count: "DOE^JOHN^^" == "DOE^JOHN" */
		size_t a = strlen(kv), b = strlen(v);
		while (a > 0 && (kv[a - 1] == '^' || kv[a - 1] == '='))
			a--;
		while (b > 0 && (v[b - 1] == '^' || v[b - 1] == '='))
			b--;
		return a == b && strncasecmp(kv, v, a) == 0;
	}
	return strcmp(kv, v) == 0;
}

int diana__key_matches(const diana__key *key, const char *value)
{
	const char *kp;
	int uid_list;

	if (!key->value || !*key->value || strcmp(key->value, "*") == 0)
		return 1; /* universal matching */
	if (!value)
		return 0;
	uid_list = key->vr[0] == 'U' && key->vr[1] == 'I';
	/* key values: a UID list, otherwise one value (other VRs keep '\' literal only for LT/ST/UT) */
	kp = key->value;
	for (;;) {
		size_t klen = uid_list ? strcspn(kp, "\\") : strlen(kp);
		char *kv = trimmed(kp, klen);
		const char *vp = value;
		int hit = 0;

		if (!kv)
			return 0;
		/* element values: any of its values may match */
		for (;;) {
			size_t vlen = vr_is(key->vr, "LT ST UT") ? strlen(vp) : strcspn(vp, "\\");
			char *v = trimmed(vp, vlen);
			if (v) {
				hit = match_one(key, kv, v);
				free(v);
			}
			if (hit || !vp[vlen])
				break;
			vp += vlen + 1;
		}
		free(kv);
		if (hit)
			return 1;
		if (!kp[klen])
			return 0;
		kp += klen + 1;
	}
}
