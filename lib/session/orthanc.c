/*
 * libdiana - Orthanc sessions: an Orthanc server's REST API over libdiana's
 * HTTP client (one keep-alive connection per session).
 *
 * Without a modality: Orthanc's own store (/tools/find, /tools/lookup,
 * /instances/{id}/file, POST /instances, /changes). With ?modality=NAME: the
 * PACS that Orthanc knows as NAME (DIANA's helper setup): C-FIND through
 * /modalities/NAME/query, C-MOVE into Orthanc through /modalities/NAME/move,
 * then the instances fetched one by one over HTTP (not the zip archive,
 * ~50x slower), C-ECHO through /modalities/NAME/echo, store through Orthanc
 * and /modalities/NAME/store. See doc/session.md and ../shared/LAB.md.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "session.h"
#include "../net/net.h"
#include "../dicom/dicom.h"

typedef struct orthanc {
	diana__http *http;
	diana__http *move_http; /* with a modality: the C-MOVE request, on its own connection,
	                           while `http` downloads what has arrived */
	char *modality;     /* NULL: Orthanc's own store; else the symbolic name, URL-escaped */
	char *modality_raw; /* as given (for messages: not PHI) */
	char *own_aet;      /* Orthanc's DicomAet (move target), fetched once */
} orthanc;

static orthanc *impl(diana_session *s)
{
	return (orthanc *)s->impl;
}

/* ------------------------------------------------------------- requests */

/* Orthanc's error answers carry "OrthancError" (generic) and "Details" (may
 * quote a DIMSE status). Neither is echoed whole: only the generic text and a
 * "status 0x...." found in the details reach the error message. */
static int orthanc_error(int code, const char *what, const diana__http_response *r)
{
	char status[16] = "";
	const char *generic = NULL;
	cJSON *j = NULL;

	if (r->body.data && r->body.len)
		j = cJSON_ParseWithLength(r->body.data, r->body.len);
	if (j) {
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "Details");
		const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, "OrthancError");
		if (cJSON_IsString(d)) {
			const char *p = strstr(d->valuestring, "status 0x");
			if (p && strlen(p) >= 13)
				snprintf(status, sizeof(status), "0x%.4s", p + 9);
		}
		if (cJSON_IsString(g))
			generic = g->valuestring;
	}
	if (r->status == 0) {
		/* no answer: keep the network error of the HTTP layer */
		cJSON_Delete(j);
		return code;
	}
	code = diana__error_set(code, "%s: HTTP %ld%s%.80s%s%s%s", what, r->status, generic ? " (" : "",
	                        generic ? generic : "", generic ? ")" : "",
	                        status[0] ? ", DIMSE status " : "", status);
	cJSON_Delete(j);
	return code;
}

/* a request whose answer is JSON (or nothing) */
static int oc_json_on(diana_session *s, diana__http *http, const char *method, const char *path,
                      const char *body, const char *ctype, const char *what, cJSON **out);

static int oc_json(diana_session *s, const char *method, const char *path, const char *body,
                   const char *ctype, const char *what, cJSON **out)
{
	return oc_json_on(s, impl(s)->http, method, path, body, ctype, what, out);
}

static int oc_json_on(diana_session *s, diana__http *http, const char *method, const char *path,
                      const char *body, const char *ctype, const char *what, cJSON **out)
{
	diana__http_request req = { 0 };
	diana__http_response resp;
	int rc;

	if (out)
		*out = NULL;
	if (diana__session_cancelled(s))
		return DIANA_ECANCELLED;
	req.method = method;
	req.path = path;
	req.body = body;
	req.body_len = body ? strlen(body) : 0;
	req.content_type = body ? (ctype ? ctype : "application/json") : NULL;
	req.accept = "application/json";
	rc = diana__http_perform(http, &req, &resp);
	if (rc < 0) {
		rc = orthanc_error(rc, what, &resp);
		diana__http_response_dispose(&resp);
		return rc;
	}
	if (out) {
		*out = resp.body.data ? cJSON_ParseWithLength(resp.body.data, resp.body.len) : NULL;
		if (!*out)
			rc = diana__error_set(DIANA_EPACS, "%s: the answer is not JSON", what);
	}
	diana__http_response_dispose(&resp);
	return rc;
}

static int own_aet(diana_session *s, const char **aet)
{
	orthanc *o = impl(s);
	cJSON *sys;
	const cJSON *a;
	int rc;

	if (!o->own_aet) {
		rc = oc_json(s, "GET", "/system", NULL, NULL, "Orthanc /system", &sys);
		if (rc < 0)
			return rc;
		a = cJSON_GetObjectItemCaseSensitive(sys, "DicomAet");
		if (cJSON_IsString(a) && *a->valuestring)
			o->own_aet = diana__strdup(a->valuestring);
		cJSON_Delete(sys);
		if (!o->own_aet)
			return diana__error_set(DIANA_EPACS, "Orthanc /system names no DicomAet");
	}
	*aet = o->own_aet;
	return 0;
}

/* ----------------------------------------------------------------- echo */

static int oc_echo(diana_session *s)
{
	orthanc *o = impl(s);
	char path[300];
	cJSON *j = NULL;
	int rc;

	rc = oc_json(s, "GET", "/system", NULL, NULL, "Orthanc /system", &j);
	cJSON_Delete(j);
	if (rc < 0 || !o->modality)
		return rc;
	snprintf(path, sizeof(path), "/modalities/%s/echo", o->modality);
	rc = oc_json(s, "POST", path, "{}", NULL, "C-ECHO through Orthanc", NULL);
	if (rc == DIANA_ENOTFOUND)
		return diana__error_set(DIANA_ENOTFOUND, "Orthanc knows no modality '%.64s'", o->modality_raw);
	return rc;
}

/* ----------------------------------------------------------------- find */

static const char *orthanc_level(int level)
{
	switch (level) {
	case DIANA_LEVEL_PATIENT:
		return "Patient";
	case DIANA_LEVEL_STUDY:
		return "Study";
	case DIANA_LEVEL_SERIES:
		return "Series";
	default:
		return "Instance";
	}
}

static void tag_key(uint32_t tag, char out[10])
{
	snprintf(out, 10, "%04x,%04x", (unsigned)(tag >> 16), (unsigned)(tag & 0xFFFF));
}

/* keep only the keys asked for (plus QueryRetrieveLevel) in an answer object of tag -> string */
static void filter_answer(cJSON *a, const diana__keys *keys)
{
	cJSON *it = a ? a->child : NULL;

	while (it) {
		cJSON *next = it->next;
		uint32_t tag = 0;
		int keep = 0;
		char hex[9];
		if (it->string && strlen(it->string) == 9 && it->string[4] == ',') {
			memcpy(hex, it->string, 4);
			memcpy(hex + 4, it->string + 5, 4);
			hex[8] = '\0';
			tag = (uint32_t)strtoul(hex, NULL, 16);
			keep = tag == 0x00080052 || tag == 0x00080005 || diana__keys_get(keys, tag) != NULL;
		}
		if (!keep)
			cJSON_DeleteItemFromObjectCaseSensitive(a, it->string);
		it = next;
	}
}

/* C-FIND on the modality through Orthanc */
static int find_modality(diana_session *s, int level, const diana__keys *keys, diana_find_fn fn,
                         void *ud, size_t *count)
{
	orthanc *o = impl(s);
	cJSON *body = cJSON_CreateObject(), *q, *ans = NULL, *res = NULL;
	char path[400], *text = NULL, qid[80] = "";
	const cJSON *a;
	size_t i;
	int rc;

	if (!body || !cJSON_AddStringToObject(body, "Level", orthanc_level(level)) ||
	    !(q = cJSON_AddObjectToObject(body, "Query")) || !cJSON_AddBoolToObject(body, "Normalize", 0)) {
		cJSON_Delete(body);
		return diana__error_oom();
	}
	for (i = 0; i < keys->n; i++) {
		char k[10];
		tag_key(keys->v[i].tag, k);
		if (!cJSON_AddStringToObject(q, k, keys->v[i].value)) {
			cJSON_Delete(body);
			return diana__error_oom();
		}
	}
	text = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	if (!text)
		return diana__error_oom();
	snprintf(path, sizeof(path), "/modalities/%s/query", o->modality);
	rc = oc_json(s, "POST", path, text, NULL, "C-FIND through Orthanc", &res);
	cJSON_free(text);
	if (rc == DIANA_ENOTFOUND)
		return diana__error_set(DIANA_ENOTFOUND, "Orthanc knows no modality '%.64s'", o->modality_raw);
	if (rc < 0)
		return rc;
	a = cJSON_GetObjectItemCaseSensitive(res, "ID");
	if (cJSON_IsString(a) && strlen(a->valuestring) < sizeof(qid))
		snprintf(qid, sizeof(qid), "%s", a->valuestring);
	cJSON_Delete(res);
	if (!qid[0])
		return diana__error_set(DIANA_EPACS, "C-FIND through Orthanc: no query ID in the answer");

	snprintf(path, sizeof(path), "/queries/%s/answers?expand&short", qid);
	rc = oc_json(s, "GET", path, NULL, NULL, "C-FIND answers", &ans);
	if (rc == 0 && !cJSON_IsArray(ans))
		rc = diana__error_set(DIANA_EPACS, "C-FIND answers: not a JSON array");
	if (rc == 0) {
		cJSON_ArrayForEach(a, ans)
		{
			diana_dataset *ds = NULL;
			filter_answer((cJSON *)a, keys);
			rc = diana__answer_from_tag_strings(a, &ds);
			if (rc < 0)
				break;
			rc = fn(ds, ud);
			diana_dataset_free(ds);
			if (rc != 0) {
				rc = rc < 0 && diana_error_code() == rc
				         ? rc
				         : diana__error_set(DIANA_EUSER, "the find callback stopped the query");
				break;
			}
			if (count)
				(*count)++;
		}
	}
	cJSON_Delete(ans);
	/* Orthanc keeps queries (up to QueryRetrieveSize): drop ours */
	snprintf(path, sizeof(path), "/queries/%s", qid);
	{
		int saved = diana_error_code();
		char msg[256];
		snprintf(msg, sizeof(msg), "%s", diana_error_message() ? diana_error_message() : "");
		oc_json(s, "DELETE", path, NULL, NULL, "dropping the query", NULL);
		if (rc < 0)
			diana__error_set(saved, "%s", msg);
		else
			diana_error_clear();
	}
	return rc;
}

/* adds tag -> string from an Orthanc {Keyword: value} object into `dst` (keys as "gggg,eeee") */
static int add_main_tags(cJSON *dst, const cJSON *src)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, src)
	{
		uint32_t tag;
		char k[10];
		if (!it->string || !cJSON_IsString(it))
			continue;
		if (diana__dict_lookup(it->string, &tag) < 0)
			continue;
		tag_key(tag, k);
		if (cJSON_GetObjectItemCaseSensitive(dst, k))
			continue;
		if (!cJSON_AddStringToObject(dst, k, it->valuestring))
			return diana__error_oom();
	}
	return 0;
}

static int add_string(cJSON *dst, uint32_t tag, const char *v)
{
	char k[10];
	tag_key(tag, k);
	cJSON_DeleteItemFromObjectCaseSensitive(dst, k);
	return cJSON_AddStringToObject(dst, k, v) ? 0 : diana__error_oom();
}

static int add_number(cJSON *dst, uint32_t tag, double v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%.0f", v);
	return add_string(dst, tag, buf);
}

/* MainDicomTags of a parent resource ("/studies/ID", "/series/ID") into dst */
static int add_parent_tags(diana_session *s, const char *kind, const char *id, cJSON *dst, int with_patient)
{
	char path[200];
	cJSON *j = NULL;
	int rc;

	if (!id || strlen(id) > 100)
		return 0;
	snprintf(path, sizeof(path), "/%s/%s", kind, id);
	rc = oc_json(s, "GET", path, NULL, NULL, "Orthanc resource", &j);
	if (rc < 0)
		return rc;
	rc = add_main_tags(dst, cJSON_GetObjectItemCaseSensitive(j, "MainDicomTags"));
	if (rc == 0 && with_patient)
		rc = add_main_tags(dst, cJSON_GetObjectItemCaseSensitive(j, "PatientMainDicomTags"));
	if (rc == 0 && strcmp(kind, "series") == 0) {
		/* one level further up for the study UID */
		const cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "ParentStudy");
		if (cJSON_IsString(ps))
			rc = add_parent_tags(s, "studies", ps->valuestring, dst, with_patient);
	}
	cJSON_Delete(j);
	return rc;
}

static int wants(const diana__keys *k, uint32_t tag)
{
	return diana__keys_get(k, tag) != NULL;
}

/* computed attributes of a study (counts, modalities) when asked for */
static int study_computed(diana_session *s, const cJSON *res, const diana__keys *keys, cJSON *dst)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(res, "ID");
	const cJSON *series = cJSON_GetObjectItemCaseSensitive(res, "Series");
	char path[200];
	int rc = 0;

	if (wants(keys, 0x00201206) && cJSON_IsArray(series))
		rc = add_number(dst, 0x00201206, cJSON_GetArraySize(series));
	if (rc == 0 && (wants(keys, 0x00201208) || wants(keys, 0x00080061)) && cJSON_IsString(id) &&
	    strlen(id->valuestring) < 100) {
		cJSON *list = NULL;
		const cJSON *se;
		diana__buf mods = DIANA__BUF_INIT;
		double n = 0;
		snprintf(path, sizeof(path), "/studies/%s/series", id->valuestring);
		rc = oc_json(s, "GET", path, NULL, NULL, "Orthanc study series", &list);
		if (rc < 0)
			return rc;
		cJSON_ArrayForEach(se, list)
		{
			const cJSON *inst = cJSON_GetObjectItemCaseSensitive(se, "Instances");
			const cJSON *m = cJSON_GetObjectItemCaseSensitive(
			    cJSON_GetObjectItemCaseSensitive(se, "MainDicomTags"), "Modality");
			if (cJSON_IsArray(inst))
				n += cJSON_GetArraySize(inst);
			if (cJSON_IsString(m) && *m->valuestring) {
				/* distinct values, '\'-separated */
				int seen = 0;
				const char *p = mods.data;
				size_t ml = strlen(m->valuestring);
				while (p && *p) {
					size_t l = strcspn(p, "\\");
					if (l == ml && strncmp(p, m->valuestring, l) == 0)
						seen = 1;
					p += l + (p[l] ? 1 : 0);
				}
				if (!seen) {
					if (mods.len)
						diana__buf_putc(&mods, '\\');
					diana__buf_puts(&mods, m->valuestring);
				}
			}
		}
		cJSON_Delete(list);
		if (wants(keys, 0x00201208))
			rc = add_number(dst, 0x00201208, n);
		if (rc == 0 && wants(keys, 0x00080061))
			rc = add_string(dst, 0x00080061, mods.data ? mods.data : "");
		diana__buf_dispose(&mods);
	}
	return rc;
}

/* the Orthanc query: keys with a non-empty value (keywords where known) */
static cJSON *tools_find_body(int level, const diana__keys *keys)
{
	cJSON *body = cJSON_CreateObject(), *q;
	size_t i;

	if (!body || !cJSON_AddStringToObject(body, "Level", orthanc_level(level)) ||
	    !(q = cJSON_AddObjectToObject(body, "Query")) || !cJSON_AddBoolToObject(body, "Expand", 1) ||
	    !cJSON_AddBoolToObject(body, "CaseSensitive", 0)) {
		cJSON_Delete(body);
		return NULL;
	}
	for (i = 0; i < keys->n; i++) {
		char k[10];
		const char *name = keys->v[i].keyword;
		if (!keys->v[i].value[0] || strcmp(keys->v[i].value, "*") == 0)
			continue;
		/* computed attributes are not in Orthanc's index */
		if (keys->v[i].tag == 0x00201206 || keys->v[i].tag == 0x00201208 || keys->v[i].tag == 0x00080061 ||
		    keys->v[i].tag == 0x00201209 || keys->v[i].tag == 0x00080052)
			continue;
		tag_key(keys->v[i].tag, k);
		if (!cJSON_AddStringToObject(q, (name && *name) ? name : k, keys->v[i].value)) {
			cJSON_Delete(body);
			return NULL;
		}
	}
	return body;
}

static int find_own(diana_session *s, int level, const diana__keys *keys, diana_find_fn fn, void *ud,
                    size_t *count)
{
	cJSON *body = tools_find_body(level, keys), *res = NULL;
	const cJSON *r;
	char *text;
	int rc;

	if (!body)
		return diana__error_oom();
	text = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	if (!text)
		return diana__error_oom();
	rc = oc_json(s, "POST", "/tools/find", text, NULL, "Orthanc /tools/find", &res);
	cJSON_free(text);
	if (rc < 0)
		return rc;
	if (!cJSON_IsArray(res)) {
		cJSON_Delete(res);
		return diana__error_set(DIANA_EPACS, "Orthanc /tools/find: not a JSON array");
	}
	cJSON_ArrayForEach(r, res)
	{
		cJSON *a = cJSON_CreateObject();
		diana_dataset *ds = NULL;
		const char *lvl = diana__level_name(level);

		if (!a) {
			rc = diana__error_oom();
			break;
		}
		rc = add_main_tags(a, cJSON_GetObjectItemCaseSensitive(r, "MainDicomTags"));
		if (rc == 0)
			rc = add_main_tags(a, cJSON_GetObjectItemCaseSensitive(r, "PatientMainDicomTags"));
		if (rc == 0 && level == DIANA_LEVEL_SERIES)
			rc = add_parent_tags(s, "studies",
			                     cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "ParentStudy")),
			                     a, 1);
		if (rc == 0 && level == DIANA_LEVEL_INSTANCE)
			rc = add_parent_tags(s, "series",
			                     cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "ParentSeries")),
			                     a, 1);
		if (rc == 0 && level == DIANA_LEVEL_STUDY)
			rc = study_computed(s, r, keys, a);
		if (rc == 0 && level == DIANA_LEVEL_SERIES && wants(keys, 0x00201209)) {
			const cJSON *inst = cJSON_GetObjectItemCaseSensitive(r, "Instances");
			if (cJSON_IsArray(inst))
				rc = add_number(a, 0x00201209, cJSON_GetArraySize(inst));
		}
		if (rc == 0)
			rc = add_string(a, 0x00080052, lvl);
		if (rc == 0) {
			/* parents' UIDs always come back at lower levels */
			diana__keys k2 = { 0 };
			size_t i;
			for (i = 0; i < keys->n && rc == 0; i++)
				rc = diana__keys_set(&k2, keys->v[i].tag, keys->v[i].value);
			if (rc == 0 && level >= DIANA_LEVEL_SERIES)
				rc = diana__keys_add_return(&k2, 0x0020000D);
			if (rc == 0 && level >= DIANA_LEVEL_INSTANCE)
				rc = diana__keys_add_return(&k2, 0x0020000E);
			if (rc == 0) {
				filter_answer(a, &k2);
				rc = diana__answer_from_tag_strings(a, &ds);
			}
			diana__keys_dispose(&k2);
		}
		cJSON_Delete(a);
		if (rc < 0)
			break;
		rc = fn(ds, ud);
		diana_dataset_free(ds);
		if (rc != 0) {
			rc = rc < 0 && diana_error_code() == rc
			         ? rc
			         : diana__error_set(DIANA_EUSER, "the find callback stopped the query");
			break;
		}
		if (count)
			(*count)++;
	}
	cJSON_Delete(res);
	return rc;
}

static int oc_find(diana_session *s, int level, const diana__keys *keys, diana_find_fn fn, void *ud,
                   size_t *count)
{
	if (impl(s)->modality)
		return find_modality(s, level, keys, fn, ud, count);
	return find_own(s, level, keys, fn, ud, count);
}

/* ------------------------------------------------------------- retrieve */

/* Orthanc ID of a resource by its UID (POST /tools/lookup), of the given type */
static int lookup(diana_session *s, const char *uid, const char *type, char *id, size_t idlen)
{
	cJSON *res = NULL;
	const cJSON *r;
	int rc;

	id[0] = '\0';
	rc = oc_json(s, "POST", "/tools/lookup", uid, "text/plain", "Orthanc /tools/lookup", &res);
	if (rc < 0)
		return rc;
	cJSON_ArrayForEach(r, res)
	{
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "Type"));
		const char *i = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "ID"));
		if (t && i && strcmp(t, type) == 0 && strlen(i) < idlen) {
			snprintf(id, idlen, "%s", i);
			break;
		}
	}
	cJSON_Delete(res);
	return id[0] ? 0 : DIANA_ENOTFOUND;
}

struct file_sink {
	int fd;
	diana_session *s;
	int err;
};

static int file_sink_fn(const void *data, size_t len, void *ud)
{
	struct file_sink *f = ud;
	const char *p = data;

	if (atomic_load(&f->s->cancelled))
		return diana__error_set(DIANA_ECANCELLED, "cancelled");
	while (len > 0) {
		ssize_t w = write(f->fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			f->err = errno;
			return diana__error_errno(errno, "writing a received instance");
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* GET /instances/{id}/file into a temporary file, then the callback */
static int fetch_instance(diana_session *s, const char *id, const char *sop_uid, diana_instance_fn fn,
                          void *ud, diana_transfer_stats *st)
{
	diana__http_request req = { 0 };
	diana__http_response resp;
	struct file_sink fs;
	char path[200], *tmp = NULL;
	int fd, rc;

	fd = diana__temp_file(s->set.temp_dir, &tmp);
	if (fd < 0)
		return fd;
	snprintf(path, sizeof(path), "/instances/%s/file", id);
	fs.fd = fd;
	fs.s = s;
	fs.err = 0;
	req.method = "GET";
	req.path = path;
	req.accept = "application/dicom";
	req.sink = file_sink_fn;
	req.sink_user_data = &fs;
	rc = diana__http_perform(impl(s)->http, &req, &resp);
	if (rc < 0)
		rc = orthanc_error(rc, "fetching an instance from Orthanc", &resp);
	diana__http_response_dispose(&resp);
	if (close(fd) != 0 && rc == 0)
		rc = diana__error_errno(errno, "writing a received instance");
	if (rc < 0) {
		unlink(tmp);
		free(tmp);
		if (rc == DIANA_ENOTFOUND)
			return diana__error_set(DIANA_ENOTFOUND, "an instance vanished from Orthanc during the retrieve");
		return rc;
	}
	rc = diana__deliver_temp(s, tmp, sop_uid, NULL, NULL, fn, ud, st);
	free(tmp);
	return rc;
}

/* C-MOVE of the resource from the modality into Orthanc (synchronous: the
 * answer comes when the transfer ends), on the connection `http` */
static int move_into_orthanc(diana_session *s, diana__http *http, const char *study, const char *series,
                             const char *sop)
{
	orthanc *o = impl(s);
	cJSON *body = cJSON_CreateObject(), *res, *r;
	const char *aet = NULL;
	char path[300], *text;
	int rc;

	rc = own_aet(s, &aet);
	if (rc < 0) {
		cJSON_Delete(body);
		return rc;
	}
	if (!body || !cJSON_AddStringToObject(body, "Level", sop ? "Instance" : series ? "Series" : "Study") ||
	    !(res = cJSON_AddArrayToObject(body, "Resources")) || !(r = cJSON_CreateObject())) {
		cJSON_Delete(body);
		return diana__error_oom();
	}
	cJSON_AddItemToArray(res, r);
	if (!cJSON_AddStringToObject(r, "StudyInstanceUID", study) ||
	    (series && !cJSON_AddStringToObject(r, "SeriesInstanceUID", series)) ||
	    (sop && !cJSON_AddStringToObject(r, "SOPInstanceUID", sop)) ||
	    !cJSON_AddStringToObject(body, "TargetAet", aet) || !cJSON_AddBoolToObject(body, "Synchronous", 1)) {
		cJSON_Delete(body);
		return diana__error_oom();
	}
	if (s->set.timeout_ms > 0)
		cJSON_AddNumberToObject(body, "Timeout", (double)((s->set.timeout_ms + 999) / 1000));
	text = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	if (!text)
		return diana__error_oom();
	snprintf(path, sizeof(path), "/modalities/%s/move", o->modality);
	rc = oc_json_on(s, http, "POST", path, text, NULL, "C-MOVE through Orthanc", NULL);
	cJSON_free(text);
	if (rc == DIANA_ENOTFOUND)
		return diana__error_set(DIANA_ENOTFOUND, "Orthanc knows no modality '%.64s'", o->modality_raw);
	return rc;
}

/* ------------------------------------------------- retrieve while moving */

/*
 * Through a modality, a study or series is downloaded while it arrives:
 * Orthanc 1.10's /modalities/{m}/move only answers when the whole C-MOVE
 * is over (it has no asynchronous form), so a thread sends that request on
 * a second connection, and this one lists what Orthanc has stored so far
 * and fetches each instance once, until the move has ended and a last list
 * is done. The transfer from the PACS and the download, de-identification
 * and writing overlap (they took turns before: the C-MOVE alone is most of
 * a CT slice's time through the helper).
 */
typedef struct mover {
	diana_session *s;
	const char *study, *series;
	int rc;
	char msg[512];
	pthread_mutex_t lock;
	pthread_cond_t ended; /* signalled with done set: the last list is due at once */
	int done;
} mover;

static void *mover_main(void *arg)
{
	mover *m = arg;
	int rc = move_into_orthanc(m->s, impl(m->s)->move_http, m->study, m->series, NULL);
	pthread_mutex_lock(&m->lock);
	m->rc = rc;
	if (rc < 0)
		snprintf(m->msg, sizeof(m->msg), "%s", diana_error_message());
	m->done = 1;
	pthread_cond_signal(&m->ended);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

static int mover_done(mover *m)
{
	int d;
	pthread_mutex_lock(&m->lock);
	d = m->done;
	pthread_mutex_unlock(&m->lock);
	return d;
}

/* wait up to `ms` for the move to end */
static void mover_wait(mover *m, long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&m->lock);
	while (!m->done && pthread_cond_timedwait(&m->ended, &m->lock, &ts) == 0)
		;
	pthread_mutex_unlock(&m->lock);
}

/* Orthanc instance IDs fetched, sorted */
typedef struct idset {
	char (*v)[48];
	size_t n, cap;
} idset;

/* 1 when added (new), 0 when there already, < 0 on error */
static int idset_add(idset *set, const char *id)
{
	size_t lo = 0, hi = set->n;
	if (strlen(id) >= sizeof(set->v[0]))
		return 0; /* not an Orthanc ID: never fetched */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(set->v[mid], id);
		if (c == 0)
			return 0;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 256;
		char(*v)[48] = realloc(set->v, cap * sizeof(*v));
		if (!v)
			return diana__error_oom();
		set->v = v;
		set->cap = cap;
	}
	memmove(set->v + lo + 1, set->v + lo, (set->n - lo) * sizeof(set->v[0]));
	snprintf(set->v[lo], sizeof(set->v[0]), "%s", id);
	set->n++;
	return 1;
}

/* the instances of one Orthanc series not fetched yet (IDs only: a list of
 * /series/{id} costs 47 bytes an instance, the expanded
 * /studies/{id}/instances a few hundred) */
static int fetch_new_in_series(diana_session *s, const char *seid, idset *seen, diana_instance_fn fn, void *ud,
                               diana_transfer_stats *st, size_t *fetched, size_t *listed)
{
	char path[200];
	cJSON *ser = NULL;
	const cJSON *ids, *it;
	int rc;

	snprintf(path, sizeof(path), "/series/%s", seid);
	rc = oc_json(s, "GET", path, NULL, NULL, "Orthanc series", &ser);
	if (rc == DIANA_ENOTFOUND) { /* removed meanwhile (an eviction of an older copy) */
		diana_error_clear();
		return 0;
	}
	if (rc < 0)
		return rc;
	ids = cJSON_GetObjectItemCaseSensitive(ser, "Instances");
	if (!cJSON_IsArray(ids)) {
		cJSON_Delete(ser);
		return diana__error_set(DIANA_EPACS, "Orthanc series: no instance list");
	}
	cJSON_ArrayForEach(it, ids)
	{
		const char *id = cJSON_GetStringValue(it);
		if (!id || strlen(id) > 100)
			continue;
		(*listed)++;
		if ((rc = idset_add(seen, id)) <= 0) {
			if (rc < 0)
				break;
			continue;
		}
		rc = fetch_instance(s, id, NULL, fn, ud, st); /* its UIDs are read from the file */
		if (rc < 0)
			break;
		(*fetched)++;
	}
	cJSON_Delete(ser);
	return rc < 0 ? rc : 0;
}

/* one pass: the instances Orthanc lists now that were not fetched yet;
 * *fetched counts them, *listed the instances listed */
static int fetch_new(diana_session *s, const char *study, const char *series, char *sid, size_t sidlen,
                     char *seid, size_t seidlen, idset *seen, diana_instance_fn fn, void *ud,
                     diana_transfer_stats *st, size_t *fetched, size_t *listed)
{
	char path[200];
	cJSON *stu = NULL;
	const cJSON *ids, *it;
	int rc;

	*fetched = *listed = 0;
	if (!sid[0]) {
		rc = lookup(s, study, "Study", sid, sidlen);
		if (rc == DIANA_ENOTFOUND) {
			diana_error_clear();
			return 0; /* nothing has arrived yet */
		}
		if (rc < 0)
			return rc;
	}
	if (series) {
		if (!seid[0]) {
			rc = lookup(s, series, "Series", seid, seidlen);
			if (rc == DIANA_ENOTFOUND) {
				diana_error_clear();
				return 0;
			}
			if (rc < 0)
				return rc;
		}
		return fetch_new_in_series(s, seid, seen, fn, ud, st, fetched, listed);
	}
	snprintf(path, sizeof(path), "/studies/%s", sid);
	rc = oc_json(s, "GET", path, NULL, NULL, "Orthanc study", &stu);
	if (rc < 0)
		return rc;
	ids = cJSON_GetObjectItemCaseSensitive(stu, "Series");
	if (!cJSON_IsArray(ids)) {
		cJSON_Delete(stu);
		return diana__error_set(DIANA_EPACS, "Orthanc study: no series list");
	}
	cJSON_ArrayForEach(it, ids)
	{
		const char *id = cJSON_GetStringValue(it);
		if (!id || strlen(id) > 100)
			continue;
		if ((rc = fetch_new_in_series(s, id, seen, fn, ud, st, fetched, listed)) < 0)
			break;
	}
	cJSON_Delete(stu);
	return rc < 0 ? rc : 0;
}

static int retrieve_while_moving(diana_session *s, const char *study, const char *series, diana_instance_fn fn,
                                 void *ud, diana_transfer_stats *st)
{
	mover m;
	pthread_t t;
	idset seen = { NULL, 0, 0 };
	char sid[80] = "", seid[80] = "";
	const char *aet;
	size_t total = 0;
	int rc, threaded = 1;

	/* Orthanc's AE title now, on this connection: the thread must not use it */
	if ((rc = own_aet(s, &aet)) < 0)
		return rc;
	long pause = 10;

	memset(&m, 0, sizeof(m));
	m.s = s;
	m.study = study;
	m.series = series;
	pthread_mutex_init(&m.lock, NULL);
	pthread_cond_init(&m.ended, NULL);
	if (pthread_create(&t, NULL, mover_main, &m) != 0) {
		/* no thread to spare: one after the other, as Orthanc answers */
		threaded = 0;
		m.rc = move_into_orthanc(s, impl(s)->move_http, study, series, NULL);
		m.done = 1;
		if (m.rc < 0) {
			pthread_cond_destroy(&m.ended);
			pthread_mutex_destroy(&m.lock);
			return m.rc;
		}
	}
	for (;;) {
		/* seen before listing: a list made after the move ended holds it all */
		int done = mover_done(&m);
		size_t got = 0, listed = 0;
		if (diana__session_cancelled(s)) {
			rc = DIANA_ECANCELLED;
			break;
		}
		if (done && m.rc < 0)
			break; /* the move failed: its error below */
		rc = fetch_new(s, study, series, sid, sizeof(sid), seid, sizeof(seid), &seen, fn, ud, st, &got,
		               &listed);
		if (rc < 0)
			break;
		total += got;
		if (done)
			break;
		/* nothing new: wait longer each time (10 ms to 160 ms: the helper is
		 * busy storing, the lists are not free), but not past the move's end.
		 * Caught up (a few new ones): a pause that grows with the study, so
		 * that listing stays a small part of a large study's work (20 us an
		 * instance listed: 100 ms at 5,000) */
		if (!got) {
			mover_wait(&m, pause);
			pause = pause < 160 ? pause * 2 : 160;
		} else {
			long floor_ms = (long)(listed / 50);
			pause = 10;
			if (got * 10 < listed && floor_ms > 10)
				mover_wait(&m, floor_ms);
		}
	}
	if (threaded)
		pthread_join(t, NULL); /* a stop waits for the move to end, as before */
	pthread_cond_destroy(&m.ended);
	pthread_mutex_destroy(&m.lock);
	free(seen.v);
	if (rc == DIANA_EUSER || rc == DIANA_ECANCELLED)
		return rc; /* the caller stopped */
	if (m.rc < 0) /* the move's own failure says more (and keeps the codes retries go by) */
		return diana__error_set(m.rc, "%s", m.msg);
	if (rc < 0)
		return rc;
	if (!total)
		return diana__error_set(DIANA_ENOTFOUND, series ? "retrieve: no such series" : "retrieve: no such study");
	return 0;
}

static int oc_retrieve(diana_session *s, const char *study, const char *series, const char *sop,
                       diana_instance_fn fn, void *ud, diana_transfer_stats *st)
{
	char sid[80], seid[80] = "", path[200];
	cJSON *list = NULL;
	const cJSON *it;
	int rc;

	if (impl(s)->modality && !sop)
		return retrieve_while_moving(s, study, series, fn, ud, st);
	if (impl(s)->modality) {
		rc = move_into_orthanc(s, impl(s)->http, study, series, sop);
		if (rc < 0)
			return rc;
	}
	if (sop) {
		char iid[80];
		rc = lookup(s, sop, "Instance", iid, sizeof(iid));
		if (rc == DIANA_ENOTFOUND)
			return diana__error_set(DIANA_ENOTFOUND, "retrieve: no such instance");
		if (rc < 0)
			return rc;
		return fetch_instance(s, iid, sop, fn, ud, st);
	}
	rc = lookup(s, study, "Study", sid, sizeof(sid));
	if (rc == DIANA_ENOTFOUND)
		return diana__error_set(DIANA_ENOTFOUND, "retrieve: no such study");
	if (rc < 0)
		return rc;
	if (series) {
		rc = lookup(s, series, "Series", seid, sizeof(seid));
		if (rc == DIANA_ENOTFOUND)
			return diana__error_set(DIANA_ENOTFOUND, "retrieve: no such series");
		if (rc < 0)
			return rc;
		snprintf(path, sizeof(path), "/series/%s/instances", seid);
	} else {
		snprintf(path, sizeof(path), "/studies/%s/instances", sid);
	}
	rc = oc_json(s, "GET", path, NULL, NULL, "Orthanc instance list", &list);
	if (rc < 0)
		return rc;
	if (!cJSON_IsArray(list)) {
		cJSON_Delete(list);
		return diana__error_set(DIANA_EPACS, "Orthanc instance list: not a JSON array");
	}
	cJSON_ArrayForEach(it, list)
	{
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "ID"));
		const char *uid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(it, "MainDicomTags"), "SOPInstanceUID"));
		if (!id || strlen(id) > 100)
			continue;
		rc = fetch_instance(s, id, uid, fn, ud, st);
		if (rc < 0)
			break;
	}
	cJSON_Delete(list);
	return rc;
}

/* ---------------------------------------------------------------- store */

static int oc_store(diana_session *s, const char *const *paths, size_t n, diana_store_fn fn, void *ud,
                    diana_transfer_stats *st)
{
	orthanc *o = impl(s);
	cJSON *ids = o->modality ? cJSON_CreateArray() : NULL;
	int first = 0;
	size_t i;

	if (o->modality && !ids)
		return diana__error_oom();
	for (i = 0; i < n; i++) {
		diana__http_request req = { 0 };
		diana__http_response resp;
		uint8_t *data = NULL;
		size_t len = 0;
		int rc;

		if (diana__session_cancelled(s)) {
			cJSON_Delete(ids);
			return DIANA_ECANCELLED;
		}
		rc = diana__file_read(paths[i], (uint64_t)4 << 30, &data, &len);
		if (rc == 0 && (len < 132 || memcmp(data + 128, "DICM", 4) != 0))
			rc = diana__error_set(DIANA_EDICOM, "not a DICOM Part 10 file (no DICM prefix)");
		if (rc == 0) {
			req.method = "POST";
			req.path = "/instances";
			req.content_type = "application/dicom";
			req.accept = "application/json";
			req.body = data;
			req.body_len = len;
			rc = diana__http_perform(o->http, &req, &resp);
			if (rc < 0) {
				rc = orthanc_error(rc, "storing into Orthanc", &resp);
			} else {
				cJSON *j = resp.body.data ? cJSON_ParseWithLength(resp.body.data, resp.body.len) : NULL;
				const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "Status"));
				const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "ID"));
				if (!status || !id)
					rc = diana__error_set(DIANA_EPACS, "storing into Orthanc: unexpected answer");
				else if (strcmp(status, "Success") != 0 && strcmp(status, "AlreadyStored") != 0)
					rc = diana__error_set(DIANA_EPACS, "storing into Orthanc: status %.40s", status);
				else if (strcmp(status, "AlreadyStored") == 0)
					st->warnings++;
				if (rc == 0 && ids)
					cJSON_AddItemToArray(ids, cJSON_CreateString(id));
				cJSON_Delete(j);
			}
			diana__http_response_dispose(&resp);
		}
		free(data);
		if (rc == 0) {
			st->instances++;
			st->bytes += len;
		} else {
			st->failed++;
			if (!first)
				first = rc;
		}
		if (fn && fn(i, paths[i], rc, ud) != 0) {
			cJSON_Delete(ids);
			return diana__error_set(DIANA_EUSER, "the store callback stopped the transfer");
		}
	}
	if (ids && cJSON_GetArraySize(ids) > 0) {
		/* forward to the modality with one C-STORE association */
		cJSON *body = cJSON_CreateObject();
		char path[300], *text;
		int rc;
		if (!body || !cJSON_AddItemToObject(body, "Resources", ids) ||
		    !cJSON_AddBoolToObject(body, "Synchronous", 1)) {
			cJSON_Delete(body);
			return diana__error_oom();
		}
		ids = NULL;
		text = cJSON_PrintUnformatted(body);
		cJSON_Delete(body);
		if (!text)
			return diana__error_oom();
		snprintf(path, sizeof(path), "/modalities/%s/store", o->modality);
		rc = oc_json(s, "POST", path, text, NULL, "C-STORE through Orthanc", NULL);
		cJSON_free(text);
		if (rc < 0) {
			st->failed += (uint32_t)st->instances;
			st->instances = 0;
			return rc;
		}
	}
	cJSON_Delete(ids);
	if (first)
		return diana__error_set(first, "%zu of %zu files could not be stored (first: %s)", (size_t)st->failed,
		                        n, diana_strerror(first));
	return 0;
}

/* -------------------------------------------------------------- changes */

static int oc_changes(diana_session *s, int64_t since, uint32_t limit, diana_change_fn fn, void *ud,
                      int64_t *last, int *done)
{
	uint64_t delivered = 0;
	char path[100];

	if (since < 0) {
		cJSON *j = NULL;
		const cJSON *l;
		int rc = oc_json(s, "GET", "/changes?last", NULL, NULL, "Orthanc /changes", &j);
		if (rc < 0)
			return rc;
		l = cJSON_GetObjectItemCaseSensitive(j, "Last");
		if (!cJSON_IsNumber(l)) {
			cJSON_Delete(j);
			return diana__error_set(DIANA_EPACS, "Orthanc /changes: no Last");
		}
		*last = (int64_t)l->valuedouble;
		if (done)
			*done = 1;
		cJSON_Delete(j);
		return 0;
	}
	*last = since;
	for (;;) {
		cJSON *j = NULL;
		const cJSON *c, *l, *d, *arr;
		uint32_t page = 100;
		int rc;

		if (limit && limit - delivered < page)
			page = (uint32_t)(limit - delivered);
		snprintf(path, sizeof(path), "/changes?since=%lld&limit=%u", (long long)*last, page);
		rc = oc_json(s, "GET", path, NULL, NULL, "Orthanc /changes", &j);
		if (rc < 0)
			return rc;
		arr = cJSON_GetObjectItemCaseSensitive(j, "Changes");
		l = cJSON_GetObjectItemCaseSensitive(j, "Last");
		d = cJSON_GetObjectItemCaseSensitive(j, "Done");
		if (!cJSON_IsArray(arr) || !cJSON_IsNumber(l)) {
			cJSON_Delete(j);
			return diana__error_set(DIANA_EPACS, "Orthanc /changes: unexpected answer");
		}
		cJSON_ArrayForEach(c, arr)
		{
			diana_change ch;
			const cJSON *seq = cJSON_GetObjectItemCaseSensitive(c, "Seq");
			memset(&ch, 0, sizeof(ch));
			ch.version = DIANA_CHANGE_VERSION;
			ch.seq = cJSON_IsNumber(seq) ? (int64_t)seq->valuedouble : 0;
			ch.change_type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "ChangeType"));
			ch.resource_type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "ResourceType"));
			ch.id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "ID"));
			ch.path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "Path"));
			ch.date = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "Date"));
			if (!ch.change_type)
				ch.change_type = "";
			if (!ch.resource_type)
				ch.resource_type = "";
			if (!ch.id)
				ch.id = "";
			if (!ch.path)
				ch.path = "";
			if (!ch.date)
				ch.date = "";
			if (ch.seq <= *last && ch.seq != 0) {
				/* never hand out a change twice */
				continue;
			}
			rc = fn(&ch, ud);
			if (rc != 0) {
				cJSON_Delete(j);
				return diana__error_set(DIANA_EUSER, "the change callback stopped the feed");
			}
			*last = ch.seq;
			delivered++;
		}
		/* tolerate gaps: continue after Last, whatever was in between */
		if ((int64_t)l->valuedouble > *last)
			*last = (int64_t)l->valuedouble;
		if (cJSON_IsTrue(d)) {
			if (done)
				*done = 1;
			cJSON_Delete(j);
			return 0;
		}
		cJSON_Delete(j);
		if (limit && delivered >= limit)
			return 0;
		if (diana__session_cancelled(s))
			return DIANA_ECANCELLED;
	}
}

/* ---------------------------------------------------------------- evict */

static int oc_evict(diana_session *s, const char *study_uid)
{
	char id[80], path[200];
	int rc;

	if (!impl(s)->modality)
		return 0; /* the own store is not a cache */
	rc = lookup(s, study_uid, "Study", id, sizeof(id));
	if (rc == DIANA_ENOTFOUND) {
		diana_error_clear();
		return 0;
	}
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "/studies/%s", id);
	rc = oc_json(s, "DELETE", path, NULL, NULL, "deleting a study from the Orthanc helper", NULL);
	if (rc == DIANA_ENOTFOUND) {
		diana_error_clear();
		return 0;
	}
	return rc;
}

int diana__orthanc_study_uid(diana_session *s, const char *resource_type, const char *id, char uid[65])
{
	char path[200];
	cJSON *j = NULL;
	const char *v;
	int rc;

	uid[0] = '\0';
	if (!s || s->kind != DIANA_SESSION_ORTHANC || !id || strlen(id) > 100 || strchr(id, '/'))
		return diana__error_set(DIANA_EINVAL, "Orthanc resource: bad arguments");
	if (strcmp(resource_type, "Study") == 0)
		snprintf(path, sizeof(path), "/studies/%s", id);
	else if (strcmp(resource_type, "Series") == 0)
		snprintf(path, sizeof(path), "/series/%s/study", id);
	else if (strcmp(resource_type, "Instance") == 0)
		snprintf(path, sizeof(path), "/instances/%s/study", id);
	else
		return diana__error_set(DIANA_EINVAL, "Orthanc resource: no study for a %.16s", resource_type);
	rc = oc_json(s, "GET", path, NULL, NULL, "Orthanc resource", &j);
	if (rc < 0)
		return rc;
	v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "MainDicomTags"),
	                                                          "StudyInstanceUID"));
	if (v && strlen(v) <= 64)
		snprintf(uid, 65, "%s", v);
	cJSON_Delete(j);
	return uid[0] ? 0 : diana__error_set(DIANA_EPACS, "Orthanc resource without a Study Instance UID");
}

int diana__orthanc_series_info(diana_session *s, const char *id, char study_uid[65], char series_uid[65],
                               char modality[17])
{
	char path[200];
	cJSON *j = NULL;
	const cJSON *tags;
	const char *v;
	int rc;

	study_uid[0] = series_uid[0] = modality[0] = '\0';
	if (!s || s->kind != DIANA_SESSION_ORTHANC || !id || strlen(id) > 100 || strchr(id, '/'))
		return diana__error_set(DIANA_EINVAL, "Orthanc series: bad arguments");
	snprintf(path, sizeof(path), "/series/%s", id);
	rc = oc_json(s, "GET", path, NULL, NULL, "Orthanc series", &j);
	if (rc < 0)
		return rc;
	tags = cJSON_GetObjectItemCaseSensitive(j, "MainDicomTags");
	v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tags, "SeriesInstanceUID"));
	if (v && strlen(v) <= 64)
		snprintf(series_uid, 65, "%s", v);
	v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tags, "Modality"));
	if (v && strlen(v) <= 16)
		snprintf(modality, 17, "%s", v);
	v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "ParentStudy"));
	rc = v ? diana__orthanc_study_uid(s, "Study", v, study_uid) : DIANA_EPACS;
	cJSON_Delete(j);
	if (rc == 0 && !series_uid[0])
		rc = diana__error_set(DIANA_EPACS, "Orthanc series without a Series Instance UID");
	return rc;
}

int diana__orthanc_has_modality(const diana_session *s)
{
	return s->impl && ((const orthanc *)s->impl)->modality != NULL;
}

/* ------------------------------------------------------------------ open */

static void oc_free(diana_session *s)
{
	orthanc *o = impl(s);
	if (!o)
		return;
	diana__http_free(o->http);
	diana__http_free(o->move_http);
	free(o->modality);
	free(o->modality_raw);
	free(o->own_aet);
	free(o);
	s->impl = NULL;
}

static const diana__session_ops orthanc_ops = {
	"orthanc", oc_echo, oc_find, oc_retrieve, oc_store, oc_changes, NULL, oc_free, oc_evict,
};

int diana__orthanc_open(diana_session *s, const diana__uri *u)
{
	static const char *const known[] = { "modality", NULL };
	diana__http_options ho;
	diana__buf base = DIANA__BUF_INIT;
	orthanc *o;
	char *mod = NULL;
	int tls = strcmp(u->scheme, "orthanc+https") == 0;
	int rc;

	rc = diana__uri_check_params(u, known);
	if (rc < 0)
		return rc;
	o = diana__calloc(1, sizeof(*o));
	if (!o)
		return DIANA_ENOMEM;
	s->impl = o;
	s->ops = &orthanc_ops;
	rc = diana__uri_param(u, "modality", &mod);
	if (rc == 0) {
		if (!*mod) {
			free(mod);
			return diana__error_set(DIANA_EINVAL, "session URI: empty modality name");
		}
		o->modality_raw = mod;
		o->modality = diana__url_escape(mod);
		if (!o->modality)
			return DIANA_ENOMEM;
	} else if (rc != DIANA_ENOTFOUND) {
		return rc;
	}
	diana__buf_printf(&base, "%s://%s%s%s:%d%s", tls ? "https" : "http", strchr(u->host, ':') ? "[" : "",
	                  u->host, strchr(u->host, ':') ? "]" : "", u->port ? u->port : (tls ? 443 : 8042),
	                  u->path);
	if (base.oom) {
		diana__buf_dispose(&base);
		return diana__error_oom();
	}
	diana__session_http_options(s, base.data, u, &ho);
	rc = diana__http_new(&o->http, &ho);
	if (rc == 0 && o->modality)
		rc = diana__http_new(&o->move_http, &ho);
	diana__buf_dispose(&base);
	return rc;
}
