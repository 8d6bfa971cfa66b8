/*
 * libdiana - dicom:// sessions: a PACS over DIMSE through lib/net's client
 * (DCMTK dcmnet, see doc/dimse.md): C-ECHO, C-FIND, C-GET or C-MOVE to our
 * own storage SCP, C-STORE, C-CANCEL on cancel.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "../net/dimse.h"

typedef struct dsession {
	diana__dimse *d;
	int use_move;
	char *model; /* "study" or "patient" root */
	int root;
} dsession;

static dsession *impl(diana_session *s)
{
	return (dsession *)s->impl;
}

static int ds_echo(diana_session *s)
{
	return diana__dimse_echo(impl(s)->d);
}

struct find_ctx {
	diana_find_fn fn;
	void *ud;
	int stopped;
};

static int find_cb(const diana_dataset *answer, void *ud)
{
	struct find_ctx *f = ud;
	int rc = f->fn(answer, f->ud);
	if (rc != 0)
		f->stopped = 1;
	return rc;
}

static int ds_find(diana_session *s, int level, const diana__keys *keys, diana_find_fn fn, void *ud,
                   size_t *count)
{
	diana__dimse_query q = { 0 };
	struct find_ctx f = { fn, ud, 0 };
	diana__keys k = { 0 };
	diana_dataset *ids = NULL;
	size_t i;
	int rc = 0;

	/* the identifier: the keys, plus the parents' UIDs asked back at lower levels */
	for (i = 0; i < keys->n && rc == 0; i++)
		rc = diana__keys_set(&k, keys->v[i].tag, keys->v[i].value);
	if (rc == 0 && level >= DIANA_LEVEL_SERIES && impl(s)->root == DIANA__DIMSE_STUDY_ROOT)
		rc = diana__keys_add_return(&k, 0x0020000D);
	if (rc == 0 && level >= DIANA_LEVEL_INSTANCE)
		rc = diana__keys_add_return(&k, 0x0020000E);
	if (rc == 0 && level == DIANA_LEVEL_PATIENT && impl(s)->root == DIANA__DIMSE_STUDY_ROOT)
		rc = diana__error_set(DIANA_EUNSUPPORTED,
		                      "patient level queries need the patient root model (&model=patient)");
	if (rc == 0)
		rc = diana__keys_to_dataset(&k, &ids);
	diana__keys_dispose(&k);
	if (rc < 0)
		return rc;
	q.root = impl(s)->root;
	q.level = level; /* same numbering as DIANA__DIMSE_LEVEL_* */
	q.keys = ids;
	rc = diana__dimse_find(impl(s)->d, &q, find_cb, &f, count);
	diana_dataset_free(ids);
	return rc;
}

struct get_ctx {
	diana_session *s;
	diana_instance_fn fn;
	void *ud;
	diana_transfer_stats *st;
};

static int get_cb(const diana__dimse_instance *inst, void *ud)
{
	struct get_ctx *g = ud;
	diana_instance di;
	int rc;

	memset(&di, 0, sizeof(di));
	di.version = DIANA_INSTANCE_VERSION;
	di.path = inst->path;
	di.sop_instance_uid = inst->sop_instance_uid ? inst->sop_instance_uid : "";
	di.sop_class_uid = inst->sop_class_uid ? inst->sop_class_uid : "";
	di.transfer_syntax_uid = inst->transfer_syntax_uid ? inst->transfer_syntax_uid : "";
	di.size = inst->size;
	di.temporary = 1;
	g->st->instances++;
	g->st->bytes += inst->size;
	rc = g->fn(&di, g->ud);
	if (rc != 0) {
		if (rc > 0 || diana_error_code() == 0)
			diana__error_set(DIANA_EUSER, "the instance callback stopped the retrieve");
		return rc;
	}
	return 0;
}

static int ds_retrieve(diana_session *s, const char *study, const char *series, const char *sop,
                       diana_instance_fn fn, void *ud, diana_transfer_stats *st)
{
	diana__dimse_query q = { 0 };
	diana__dimse_result res;
	struct get_ctx g = { s, fn, ud, st };
	diana__keys k = { 0 };
	diana_dataset *ids = NULL;
	int rc;

	memset(&res, 0, sizeof(res));
	rc = diana__keys_set(&k, 0x0020000D, study);
	if (rc == 0 && series)
		rc = diana__keys_set(&k, 0x0020000E, series);
	if (rc == 0 && sop)
		rc = diana__keys_set(&k, 0x00080018, sop);
	if (rc == 0)
		rc = diana__keys_to_dataset(&k, &ids);
	diana__keys_dispose(&k);
	if (rc < 0)
		return rc;
	q.root = impl(s)->root;
	q.level = sop ? DIANA__DIMSE_LEVEL_IMAGE : series ? DIANA__DIMSE_LEVEL_SERIES : DIANA__DIMSE_LEVEL_STUDY;
	q.keys = ids;
	if (impl(s)->root == DIANA__DIMSE_PATIENT_ROOT) {
		/* patient root needs the patient ID: not known here */
		diana_dataset_free(ids);
		return diana__error_set(DIANA_EUNSUPPORTED, "retrieve uses the study root model");
	}
	if (impl(s)->use_move)
		rc = diana__dimse_move(impl(s)->d, &q, NULL, get_cb, &g, &res);
	else
		rc = diana__dimse_get(impl(s)->d, &q, get_cb, &g, &res);
	diana_dataset_free(ids);
	st->failed = res.failed;
	st->warnings = res.warning;
	st->status = res.status;
	return rc;
}

struct store_ctx {
	diana_store_fn fn;
	void *ud;
	const size_t *index; /* index in the caller's array of each file sent */
	int first;           /* first failure code */
};

static int store_cb(size_t index, const char *path, uint16_t status, void *ud)
{
	struct store_ctx *c = ud;
	int code = 0;

	if (status != 0 && (status & 0xF000) != 0xB000) {
		code = diana__error_set(DIANA_EPACS, "C-STORE: status 0x%04X", (unsigned)status);
		if (!c->first)
			c->first = code;
	}
	if (c->fn && c->fn(c->index[index], path, code, c->ud) != 0)
		return 1;
	return 0;
}

/* the header of a file to send: readable DICOM with SOP class and instance UIDs */
static int precheck(const char *path, uint64_t *size)
{
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	diana_dataset *ds = NULL;
	char *v = NULL;
	FILE *f;
	int rc;

	o.flags = DIANA_OPEN_SKIP_PIXELS | DIANA_OPEN_LENIENT;
	rc = diana_dataset_open(&ds, path, &o);
	if (rc < 0)
		return rc;
	rc = diana_dataset_get(ds, "SOPInstanceUID", &v);
	diana_free(v);
	v = NULL;
	if (rc == 0)
		rc = diana_dataset_get(ds, "SOPClassUID", &v);
	diana_free(v);
	diana_dataset_free(ds);
	if (rc < 0)
		return diana__error_set(DIANA_EDICOM, "no SOP Class/Instance UID: cannot be stored");
	*size = 0;
	f = fopen(path, "rb");
	if (f) {
		if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > 0)
			*size = (uint64_t)ftell(f);
		fclose(f);
	}
	return 0;
}

static int ds_store(diana_session *s, const char *const *paths, size_t n, diana_store_fn fn, void *ud,
                    diana_transfer_stats *st)
{
	struct store_ctx c = { fn, ud, NULL, 0 };
	diana__dimse_result res;
	const char **good = calloc(n ? n : 1, sizeof(*good));
	size_t *index = calloc(n ? n : 1, sizeof(*index));
	uint64_t bytes = 0;
	size_t i, ngood = 0;
	int rc = 0;

	if (!good || !index) {
		free(good);
		free(index);
		return diana__error_oom();
	}
	/* a file that cannot be sent fails alone (DCMTK's batch would refuse them all) */
	for (i = 0; i < n; i++) {
		uint64_t size = 0;
		int prc = precheck(paths[i], &size);
		if (prc < 0) {
			st->failed++;
			if (!c.first)
				c.first = prc;
			if (fn && fn(i, paths[i], prc, ud) != 0) {
				rc = diana__error_set(DIANA_EUSER, "the store callback stopped the transfer");
				goto out;
			}
			continue;
		}
		bytes += size;
		index[ngood] = i;
		good[ngood++] = paths[i];
	}
	c.index = index;
	memset(&res, 0, sizeof(res));
	if (ngood) {
		rc = diana__dimse_store(impl(s)->d, good, ngood, store_cb, &c, &res);
		st->instances = res.completed + res.warning;
		st->failed += res.failed;
		st->warnings = res.warning;
		st->status = res.status;
		if (res.failed == 0 && rc == 0)
			st->bytes = bytes;
	}
	if (rc == 0 && c.first)
		rc = diana__error_set(c.first, "%u of %zu files could not be stored", (unsigned)st->failed, n);
out:
	free(good);
	free(index);
	return rc;
}

static void ds_cancel(diana_session *s)
{
	if (impl(s) && impl(s)->d)
		diana__dimse_cancel(impl(s)->d);
}

static void ds_free(diana_session *s)
{
	dsession *d = impl(s);
	if (!d)
		return;
	diana__dimse_free(d->d);
	free(d->model);
	free(d);
	s->impl = NULL;
}

static const diana__session_ops dimse_ops = {
	"dicom", ds_echo, ds_find, ds_retrieve, ds_store, NULL, ds_cancel, ds_free, NULL,
};

static int parse_port(const char *v, int *out)
{
	char *end;
	long p = strtol(v, &end, 10);
	if (*end || end == v || p < 0 || p > 65535)
		return diana__error_set(DIANA_EINVAL, "session URI: port= must be a number 0-65535");
	*out = (int)p;
	return 0;
}

int diana__dimse_session_open(diana_session *s, const diana__uri *u)
{
	static const char *const known[] = { "aet", "port", "bind", "model", "retrieve", NULL };
	diana__dimse_options o = DIANA__DIMSE_OPTIONS_INIT;
	char *aet = NULL, *port = NULL, *bind = NULL, *model = NULL, *method = NULL;
	dsession *d;
	int local_port = 0, rc;

	rc = diana__uri_check_params(u, known);
	if (rc < 0)
		return rc;
	if (!u->user || !*u->user)
		return diana__error_set(DIANA_EINVAL, "dicom URI: the called AE title is missing (dicom://AET@host:port)");
	if (u->password)
		return diana__error_set(DIANA_EINVAL, "dicom URI: no password in dicom:// URIs");
	if (!u->port)
		return diana__error_set(DIANA_EINVAL, "dicom URI: the port is missing (dicom://AET@host:port)");
	if (u->path && *u->path && strcmp(u->path, "/") != 0)
		return diana__error_set(DIANA_EINVAL, "dicom URI: no path expected after host:port");
	d = diana__calloc(1, sizeof(*d));
	if (!d)
		return DIANA_ENOMEM;
	s->impl = d;
	s->ops = &dimse_ops;

	if ((rc = diana__uri_param(u, "aet", &aet)) < 0 && rc != DIANA_ENOTFOUND)
		goto out;
	if ((rc = diana__uri_param(u, "port", &port)) < 0 && rc != DIANA_ENOTFOUND)
		goto out;
	if ((rc = diana__uri_param(u, "bind", &bind)) < 0 && rc != DIANA_ENOTFOUND)
		goto out;
	if ((rc = diana__uri_param(u, "model", &model)) < 0 && rc != DIANA_ENOTFOUND)
		goto out;
	if ((rc = diana__uri_param(u, "retrieve", &method)) < 0 && rc != DIANA_ENOTFOUND)
		goto out;
	rc = 0;
	if (port && (rc = parse_port(port, &local_port)) < 0)
		goto out;
	if (s->set.local_port)
		local_port = s->set.local_port;
	d->root = DIANA__DIMSE_STUDY_ROOT;
	if (model) {
		if (strcmp(model, "patient") == 0) {
			d->root = DIANA__DIMSE_PATIENT_ROOT;
		} else if (strcmp(model, "study") != 0) {
			rc = diana__error_set(DIANA_EINVAL, "dicom URI: model= must be study or patient");
			goto out;
		}
	}
	d->use_move = local_port != 0;
	if (method) {
		if (strcmp(method, "move") == 0) {
			d->use_move = 1;
		} else if (strcmp(method, "get") == 0) {
			d->use_move = 0;
		} else {
			rc = diana__error_set(DIANA_EINVAL, "dicom URI: retrieve= must be get or move");
			goto out;
		}
	}
	if (s->set.retrieve == DIANA_RETRIEVE_GET)
		d->use_move = 0;
	else if (s->set.retrieve == DIANA_RETRIEVE_MOVE)
		d->use_move = 1;
	if (d->use_move && local_port == 0) {
		rc = diana__error_set(DIANA_EINVAL, "dicom URI: C-MOVE needs a local port (&port=N)");
		goto out;
	}
	o.host = u->host;
	o.port = u->port;
	o.called_aet = u->user;
	o.calling_aet = s->set.calling_aet ? s->set.calling_aet : (aet && *aet ? aet : "DIANA");
	o.connect_timeout_ms = s->set.connect_timeout_ms;
	o.acse_timeout_ms = s->set.timeout_ms ? s->set.timeout_ms : 0;
	o.dimse_timeout_ms = s->set.timeout_ms;
	if (d->use_move) {
		o.scp_port = local_port == -1 ? DIANA__DIMSE_ANY_PORT : local_port;
		o.scp_bind = bind;
	}
	o.temp_dir = s->set.temp_dir;
	rc = diana__dimse_new(&d->d, &o);
out:
	free(aet);
	free(port);
	free(bind);
	free(model);
	free(method);
	return rc;
}
