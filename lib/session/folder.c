/*
 * libdiana - the folder kind of session: `file:///dir` or a plain path.
 *
 * Opening walks the folder (recursively, following symbolic links but
 * never into a folder already seen, so no loops), reads the header of every
 * regular file (up to Pixel Data, several threads) and keeps an in-memory
 * index: studies, their series, their instances. Per instance the index
 * holds the relative path, the SOP Instance/Class UIDs, the transfer syntax,
 * the size and the Instance Number; per series and per study a fixed set of
 * text attributes (ATTRS below) taken from their first file. Matching on
 * any other top-level attribute, and answering it, re-reads the header of
 * one representative file (the study's or series' first file, or the
 * instance itself). Store copies files into
 * <dir>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm and
 * adds them to the index. See doc/session-folder.md.
 *
 * Nothing here logs a path or a value: file names may hold PHI too.
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <diana/dataset.h>

#include "session.h"

#define DOMAIN "session"

/* ------------------------------------------------------------------------ */
/* indexed attributes                                                        */
/* ------------------------------------------------------------------------ */

enum { L_PATIENT, L_STUDY, L_SERIES, L_INSTANCE };

typedef struct attr_def {
	uint32_t tag;
	const char *key; /* for diana_dataset_get */
} attr_def;

/* Ordered by level: the study record holds [0, A_SERIES), the series record
 * [A_SERIES, A_INSTANCE), the instance record [A_INSTANCE, NA). */
static const attr_def ATTRS[] = {
	/* patient */
	{ 0x00100010, "00100010" }, /* PatientName */
	{ 0x00100020, "00100020" }, /* PatientID */
	{ 0x00100021, "00100021" }, /* IssuerOfPatientID */
	{ 0x00100030, "00100030" }, /* PatientBirthDate */
	{ 0x00100040, "00100040" }, /* PatientSex */
	/* study */
	{ 0x0020000D, "0020000D" }, /* StudyInstanceUID */
	{ 0x00080020, "00080020" }, /* StudyDate */
	{ 0x00080030, "00080030" }, /* StudyTime */
	{ 0x00080050, "00080050" }, /* AccessionNumber */
	{ 0x00081030, "00081030" }, /* StudyDescription */
	{ 0x00200010, "00200010" }, /* StudyID */
	{ 0x00080090, "00080090" }, /* ReferringPhysicianName */
	/* series */
	{ 0x0020000E, "0020000E" }, /* SeriesInstanceUID */
	{ 0x00080060, "00080060" }, /* Modality */
	{ 0x00200011, "00200011" }, /* SeriesNumber */
	{ 0x0008103E, "0008103E" }, /* SeriesDescription */
	{ 0x00080021, "00080021" }, /* SeriesDate */
	{ 0x00080031, "00080031" }, /* SeriesTime */
	{ 0x00180015, "00180015" }, /* BodyPartExamined */
	/* instance */
	{ 0x00080018, "00080018" }, /* SOPInstanceUID */
	{ 0x00080016, "00080016" }, /* SOPClassUID */
	{ 0x00200013, "00200013" }, /* InstanceNumber */
};

#define NA ((int)(sizeof ATTRS / sizeof ATTRS[0]))
#define A_SERIES 12
#define A_INSTANCE 19
#define N_STUDY A_SERIES
#define N_SERIES (A_INSTANCE - A_SERIES)
#define N_INST (NA - A_INSTANCE)

/* indexes into ATTRS */
#define A_PATIENT_ID 1
#define A_STUDY_UID 5
#define A_STUDY_DATE 6
#define A_STUDY_TIME 7
#define A_SERIES_UID 12
#define A_MODALITY 13
#define A_SERIES_NUMBER 14
#define A_SOP_UID 19
#define A_SOP_CLASS 20
#define A_INSTANCE_NUMBER 21

#define TAG_SPECIFIC_CHARSET 0x00080005u
#define TAG_QR_LEVEL 0x00080052u
#define TAG_INSTANCE_AVAILABILITY 0x00080056u
#define TAG_MODALITIES_IN_STUDY 0x00080061u
#define TAG_SOP_CLASSES_IN_STUDY 0x00080062u
#define TAG_TRANSFER_SYNTAX 0x00020010u
#define TAG_PAT_STUDIES 0x00201200u
#define TAG_PAT_SERIES 0x00201202u
#define TAG_PAT_INSTANCES 0x00201204u
#define TAG_STUDY_SERIES 0x00201206u
#define TAG_STUDY_INSTANCES 0x00201208u
#define TAG_SERIES_INSTANCES 0x00201209u

#define DICOMDIR_CLASS "1.2.840.10008.1.3.10"

static int attr_index(uint32_t tag)
{
	for (int i = 0; i < NA; i++)
		if (ATTRS[i].tag == tag)
			return i;
	return -1;
}

static int attr_level(int a)
{
	if (a < A_STUDY_UID)
		return L_PATIENT;
	if (a < A_SERIES)
		return L_STUDY;
	if (a < A_INSTANCE)
		return L_SERIES;
	return L_INSTANCE;
}

/* ------------------------------------------------------------------------ */
/* string map (open addressing, keys borrowed from the records)             */
/* ------------------------------------------------------------------------ */

typedef struct strmap {
	const char **keys;
	void **vals;
	size_t cap, n;
} strmap;

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static void *map_get(const strmap *m, const char *key)
{
	if (!m->cap || !key)
		return NULL;
	for (size_t i = hash_str(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->keys[i])
			return NULL;
		if (strcmp(m->keys[i], key) == 0)
			return m->vals[i];
	}
}

static int map_put(strmap *m, const char *key, void *val)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		const char **keys = calloc(cap, sizeof *keys);
		void **vals = calloc(cap, sizeof *vals);
		if (!keys || !vals) {
			free(keys);
			free(vals);
			return diana__error_oom();
		}
		for (size_t j = 0; j < m->cap; j++) {
			if (!m->keys[j])
				continue;
			size_t i = hash_str(m->keys[j]) & (cap - 1);
			while (keys[i])
				i = (i + 1) & (cap - 1);
			keys[i] = m->keys[j];
			vals[i] = m->vals[j];
		}
		free(m->keys);
		free(m->vals);
		m->keys = keys;
		m->vals = vals;
		m->cap = cap;
	}
	size_t i = hash_str(key) & (m->cap - 1);
	while (m->keys[i]) {
		if (strcmp(m->keys[i], key) == 0) {
			m->keys[i] = key;
			m->vals[i] = val;
			return 0;
		}
		i = (i + 1) & (m->cap - 1);
	}
	m->keys[i] = key;
	m->vals[i] = val;
	m->n++;
	return 0;
}

static void map_dispose(strmap *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------ */
/* the index                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct fo_study fo_study;
typedef struct fo_series fo_series;

typedef struct fo_instance {
	char *rel;         /* path relative to the folder */
	char *v[N_INST];   /* SOPInstanceUID, SOPClassUID (interned), InstanceNumber */
	const char *ts;    /* interned, may be NULL */
	uint64_t size;
	fo_series *series;
} fo_instance;

struct fo_series {
	char *v[N_SERIES];
	fo_study *study;
	fo_instance **inst;
	size_t ninst, cap;
};

struct fo_study {
	char *v[N_STUDY];
	fo_series **ser;
	size_t nser, cap;
	size_t ninst; /* instances over all series */
};

typedef struct folder {
	char *root;
	fo_study **studies;
	size_t nstudies, cap;
	strmap study_map, series_map, inst_map;
	char **interned;
	size_t ninterned, cap_interned;
	size_t ninstances;
} folder;

static const char *intern(folder *f, const char *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < f->ninterned; i++)
		if (strcmp(f->interned[i], s) == 0)
			return f->interned[i];
	if (f->ninterned == f->cap_interned) {
		size_t cap = f->cap_interned ? f->cap_interned * 2 : 16;
		char **v = realloc(f->interned, cap * sizeof *v);
		if (!v)
			return NULL;
		f->interned = v;
		f->cap_interned = cap;
	}
	char *d = diana__strdup(s);
	if (!d)
		return NULL;
	f->interned[f->ninterned++] = d;
	return d;
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 8;
	void *p = realloc(*arr, c * elem);
	if (!p)
		return diana__error_oom();
	*arr = p;
	*cap = c;
	return 0;
}

static void instance_free(fo_instance *in)
{
	if (!in)
		return;
	free(in->rel);
	free(in->v[A_SOP_UID - A_INSTANCE]);
	/* the SOP Class UID is interned */
	free(in->v[A_INSTANCE_NUMBER - A_INSTANCE]);
	free(in);
}

static void folder_dispose(folder *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->nstudies; i++) {
		fo_study *st = f->studies[i];
		for (size_t j = 0; j < st->nser; j++) {
			fo_series *se = st->ser[j];
			for (size_t k = 0; k < se->ninst; k++)
				instance_free(se->inst[k]);
			free(se->inst);
			for (int a = 0; a < N_SERIES; a++)
				free(se->v[a]);
			free(se);
		}
		free(st->ser);
		for (int a = 0; a < N_STUDY; a++)
			free(st->v[a]);
		free(st);
	}
	free(f->studies);
	map_dispose(&f->study_map);
	map_dispose(&f->series_map);
	map_dispose(&f->inst_map);
	for (size_t i = 0; i < f->ninterned; i++)
		free(f->interned[i]);
	free(f->interned);
	free(f->root);
	free(f);
}

/* What one header gives: every ATTRS value (malloc'd or NULL when absent),
 * the transfer syntax and the Media Storage SOP Class. */
typedef struct header {
	int rc;
	char *v[NA];
	char *ts;
	char *media_class;
	char *err; /* error message (debug logging only) */
} header;

static void header_dispose(header *h)
{
	for (int a = 0; a < NA; a++)
		free(h->v[a]);
	free(h->ts);
	free(h->media_class);
	free(h->err);
	memset(h, 0, sizeof *h);
}

static char *get_text(const diana_dataset *ds, const char *key)
{
	char *v = NULL;
	if (diana_dataset_get(ds, key, &v) != 0)
		return NULL;
	return v; /* diana_free() is free() inside the library */
}

static int open_header(const char *path, diana_dataset **ds)
{
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	o.flags = DIANA_OPEN_SKIP_PIXELS | DIANA_OPEN_LENIENT;
	return diana_dataset_open(ds, path, &o);
}

static void header_from_dataset(const diana_dataset *ds, header *h)
{
	for (int a = 0; a < NA; a++)
		h->v[a] = get_text(ds, ATTRS[a].key);
	h->ts = get_text(ds, "00020010");
	h->media_class = get_text(ds, "00020002");
	if (!h->v[A_SOP_CLASS] && h->media_class)
		h->v[A_SOP_CLASS] = diana__strdup(h->media_class);
	if (!h->v[A_SOP_UID])
		h->v[A_SOP_UID] = get_text(ds, "00020003");
}

static void read_header(const char *path, header *h, int want_err)
{
	diana_dataset *ds = NULL;
	memset(h, 0, sizeof *h);
	h->rc = open_header(path, &ds);
	if (h->rc) {
		if (want_err)
			h->err = diana__strdup(diana_error_message());
		return;
	}
	header_from_dataset(ds, h);
	diana_dataset_free(ds);
}

/* A UID usable as a file name: digits and dots, components non-empty, at
 * most 64 characters (so never "", ".", ".." or anything with a '/'). */
static int valid_uid(const char *u)
{
	size_t n = u ? strlen(u) : 0;
	if (n == 0 || n > 64 || u[0] == '.' || u[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (u[i] == '.') {
			if (u[i + 1] == '.')
				return 0;
		} else if (u[i] < '0' || u[i] > '9') {
			return 0;
		}
	}
	return 1;
}

static void series_remove(fo_series *se, fo_instance *in)
{
	for (size_t k = 0; k < se->ninst; k++) {
		if (se->inst[k] == in) {
			memmove(se->inst + k, se->inst + k + 1, (se->ninst - k - 1) * sizeof *se->inst);
			se->ninst--;
			se->study->ninst--;
			return;
		}
	}
}

enum { ADD_NEW = 0, ADD_DUPLICATE = 1, ADD_REPLACED = 2 };

/*
 * Add the instance of header `h` at `rel` (taken over) to the index. The
 * UIDs must be present. `replace`: an instance already indexed under the
 * same SOP Instance UID is updated (store), else the new one is a
 * duplicate and dropped (open). Values are moved out of `h`.
 * Returns ADD_* or a negative code (then `rel` is freed).
 */
static int index_add(folder *f, header *h, char *rel, uint64_t size, int replace)
{
	fo_instance *in = map_get(&f->inst_map, h->v[A_SOP_UID]);
	fo_study *st;
	fo_series *se;
	int rc, result = ADD_NEW;

	if (in && !replace) {
		free(rel);
		return ADD_DUPLICATE;
	}
	st = map_get(&f->study_map, h->v[A_STUDY_UID]);
	if (!st) {
		if ((rc = grow((void **)&f->studies, &f->cap, f->nstudies, sizeof *f->studies)) ||
		    !(st = diana__calloc(1, sizeof *st))) {
			free(rel);
			return rc ? rc : DIANA_ENOMEM;
		}
		for (int a = 0; a < N_STUDY; a++) {
			st->v[a] = h->v[a];
			h->v[a] = NULL;
		}
		if ((rc = map_put(&f->study_map, st->v[A_STUDY_UID], st))) {
			for (int a = 0; a < N_STUDY; a++)
				free(st->v[a]);
			free(st);
			free(rel);
			return rc;
		}
		f->studies[f->nstudies++] = st;
	} else if (replace) {
		/* the newest file stored tells the truth about the study */
		for (int a = 0; a < N_STUDY; a++) {
			if (a == A_STUDY_UID)
				continue;
			free(st->v[a]);
			st->v[a] = h->v[a];
			h->v[a] = NULL;
		}
	}
	se = map_get(&f->series_map, h->v[A_SERIES_UID]);
	if (se && se->study != st) {
		/* the same series UID under two studies: keep them apart by study */
		se = NULL;
		for (size_t j = 0; j < st->nser; j++)
			if (strcmp(st->ser[j]->v[0], h->v[A_SERIES_UID]) == 0)
				se = st->ser[j];
	}
	if (!se) {
		if ((rc = grow((void **)&st->ser, &st->cap, st->nser, sizeof *st->ser)) ||
		    !(se = diana__calloc(1, sizeof *se))) {
			free(rel);
			return rc ? rc : DIANA_ENOMEM;
		}
		for (int a = 0; a < N_SERIES; a++) {
			se->v[a] = h->v[A_SERIES + a];
			h->v[A_SERIES + a] = NULL;
		}
		se->study = st;
		if (!map_get(&f->series_map, se->v[0]) &&
		    (rc = map_put(&f->series_map, se->v[0], se))) {
			for (int a = 0; a < N_SERIES; a++)
				free(se->v[a]);
			free(se);
			free(rel);
			return rc;
		}
		st->ser[st->nser++] = se;
	} else if (replace) {
		for (int a = 1; a < N_SERIES; a++) {
			free(se->v[a]);
			se->v[a] = h->v[A_SERIES + a];
			h->v[A_SERIES + a] = NULL;
		}
	}
	if (in) {
		/* replace: new path and values; move between series if needed */
		free(in->rel);
		in->rel = rel;
		in->size = size;
		in->ts = intern(f, h->ts);
		in->v[A_SOP_CLASS - A_INSTANCE] = (char *)intern(f, h->v[A_SOP_CLASS]);
		free(in->v[A_INSTANCE_NUMBER - A_INSTANCE]);
		in->v[A_INSTANCE_NUMBER - A_INSTANCE] = h->v[A_INSTANCE_NUMBER];
		h->v[A_INSTANCE_NUMBER] = NULL;
		if (in->series == se)
			return ADD_REPLACED;
		series_remove(in->series, in);
		f->ninstances--;
		result = ADD_REPLACED;
	} else {
		if (!(in = diana__calloc(1, sizeof *in))) {
			free(rel);
			return DIANA_ENOMEM;
		}
		in->rel = rel;
		in->size = size;
		in->ts = intern(f, h->ts);
		in->v[0] = h->v[A_SOP_UID];
		h->v[A_SOP_UID] = NULL;
		in->v[A_SOP_CLASS - A_INSTANCE] = (char *)intern(f, h->v[A_SOP_CLASS]);
		in->v[A_INSTANCE_NUMBER - A_INSTANCE] = h->v[A_INSTANCE_NUMBER];
		h->v[A_INSTANCE_NUMBER] = NULL;
		if ((rc = map_put(&f->inst_map, in->v[0], in))) {
			instance_free(in);
			return rc;
		}
	}
	if ((rc = grow((void **)&se->inst, &se->cap, se->ninst, sizeof *se->inst)))
		return rc; /* the instance stays in the map only: found by UID, never listed */
	se->inst[se->ninst++] = in;
	in->series = se;
	st->ninst++;
	f->ninstances++;
	return result;
}

/* ------------------------------------------------------------------------ */
/* walking the folder                                                        */
/* ------------------------------------------------------------------------ */

typedef struct walk {
	char **rel;
	uint64_t *size;
	size_t n, cap;
	strmap seen_dirs;  /* "dev:ino" of folders already walked */
	char **seen_keys;
	size_t nseen, cap_seen;
	size_t dicomdirs, skipped_entries, unreadable_dirs;
	diana_session *s;
} walk;

/* qsort() that accepts an empty (NULL) array */
static void sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(base, n, size, cmp);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_dicomdir_name(const char *name)
{
	return strcasecmp(name, "DICOMDIR") == 0;
}

static int walk_dir(walk *w, diana__buf *path, size_t root_len, int depth)
{
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t nn = 0, cap = 0, base = path->len;
	int rc = 0;

	if (depth > 128) {
		w->skipped_entries++;
		return 0;
	}
	if (diana__session_cancelled(w->s))
		return DIANA_ECANCELLED;
	d = opendir(path->data);
	if (!d) {
		if (depth == 0)
			return diana__error_errno(errno, "cannot read the folder");
		w->unreadable_dirs++;
		return 0;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue; /* ., .., hidden files, our own temporary files */
		if ((rc = grow((void **)&names, &cap, nn, sizeof *names)))
			break;
		if (!(names[nn] = diana__strdup(e->d_name))) {
			rc = DIANA_ENOMEM;
			break;
		}
		nn++;
	}
	closedir(d);
	if (!rc)
		sort(names, nn, sizeof *names, cmp_str);
	for (size_t i = 0; i < nn && !rc; i++) {
		struct stat st;
		path->len = base;
		path->data[base] = 0;
		if (base && path->data[base - 1] != '/')
			diana__buf_putc(path, '/');
		diana__buf_puts(path, names[i]);
		if (path->oom) {
			rc = diana__error_oom();
			break;
		}
		if (stat(path->data, &st) < 0) {
			w->skipped_entries++; /* dangling link, vanished, no permission */
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			char key[64];
			snprintf(key, sizeof key, "%llx:%llx", (unsigned long long)st.st_dev,
			         (unsigned long long)st.st_ino);
			if (map_get(&w->seen_dirs, key))
				continue; /* a link back up or a second way in: walked once */
			char *k = diana__strdup(key);
			if (!k || grow((void **)&w->seen_keys, &w->cap_seen, w->nseen,
			               sizeof *w->seen_keys)) {
				free(k);
				rc = diana__error_oom();
				break;
			}
			w->seen_keys[w->nseen++] = k;
			if ((rc = map_put(&w->seen_dirs, k, k)))
				break;
			rc = walk_dir(w, path, root_len, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			if (is_dicomdir_name(names[i])) {
				w->dicomdirs++;
				continue;
			}
			size_t old_cap = w->cap;
			if ((rc = grow((void **)&w->rel, &w->cap, w->n, sizeof *w->rel)))
				break;
			if (old_cap != w->cap) {
				uint64_t *sz = realloc(w->size, w->cap * sizeof *sz);
				if (!sz) {
					rc = diana__error_oom();
					break;
				}
				w->size = sz;
			}
			if (!(w->rel[w->n] = diana__strdup(path->data + root_len))) {
				rc = DIANA_ENOMEM;
				break;
			}
			w->size[w->n++] = (uint64_t)st.st_size;
		} else {
			w->skipped_entries++; /* fifos, sockets, devices: never opened */
		}
	}
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	path->len = base;
	if (path->data)
		path->data[base] = 0;
	return rc;
}

static void walk_dispose(walk *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->rel[i]);
	free(w->rel);
	free(w->size);
	for (size_t i = 0; i < w->nseen; i++)
		free(w->seen_keys[i]);
	free(w->seen_keys);
	map_dispose(&w->seen_dirs);
}

/* ------------------------------------------------------------------------ */
/* reading headers on several threads                                       */
/* ------------------------------------------------------------------------ */

#define BATCH 4096
#define MAX_THREADS 8

typedef struct batch {
	const folder *f;
	char *const *rel;
	header *h;
	size_t n;
	atomic_size_t next;
	int want_err;
} batch;

static void batch_run(batch *b)
{
	diana__buf p = DIANA__BUF_INIT;
	for (;;) {
		size_t i = atomic_fetch_add(&b->next, 1);
		if (i >= b->n)
			break;
		p.len = 0;
		diana__buf_printf(&p, "%s/%s", b->f->root, b->rel[i]);
		if (p.oom) {
			memset(&b->h[i], 0, sizeof b->h[i]);
			b->h[i].rc = DIANA_ENOMEM;
			continue;
		}
		read_header(p.data, &b->h[i], b->want_err);
	}
	diana__buf_dispose(&p);
}

static void *batch_thread(void *arg)
{
	batch_run(arg);
	return NULL;
}

static int index_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	/* header reading waits on the disk too: a few more threads than CPUs */
	n = n < 1 ? 1 : n * 2;
	return n > MAX_THREADS ? MAX_THREADS : (int)n;
}

typedef struct index_counts {
	size_t not_dicom, dicomdirs, no_uids, duplicates;
} index_counts;

static int index_files(folder *f, walk *w, index_counts *c, diana_session *s)
{
	header *h = diana__calloc(BATCH, sizeof *h);
	int nthreads = index_threads(), rc = 0;
	int want_err = diana__log_enabled(DIANA_LOG_DEBUG);

	if (!h)
		return DIANA_ENOMEM;
	for (size_t start = 0; start < w->n && !rc; start += BATCH) {
		batch b;
		pthread_t th[MAX_THREADS];
		int started = 0;

		if (diana__session_cancelled(s)) {
			rc = DIANA_ECANCELLED;
			break;
		}
		b.f = f;
		b.rel = w->rel + start;
		b.h = h;
		b.n = w->n - start < BATCH ? w->n - start : BATCH;
		atomic_init(&b.next, 0);
		b.want_err = want_err;
		if (b.n >= 32) {
			for (int t = 1; t < nthreads; t++) {
				if (pthread_create(&th[started], NULL, batch_thread, &b) != 0)
					break; /* fewer threads, same work */
				started++;
			}
		}
		batch_run(&b);
		for (int t = 0; t < started; t++)
			pthread_join(th[t], NULL);
		for (size_t i = 0; i < b.n; i++) {
			header *hi = &h[i];
			size_t k = start + i;
			if (rc) {
				header_dispose(hi);
				continue;
			}
			if (hi->rc == DIANA_ENOMEM) {
				rc = diana__error_oom();
			} else if (hi->rc) {
				c->not_dicom++;
				if (want_err)
					diana__log(DIANA_LOG_DEBUG, DOMAIN,
					           "folder: skipped a file that is not DICOM (%zu so far): %s",
					           c->not_dicom, hi->err ? hi->err : "");
			} else if (hi->media_class && strcmp(hi->media_class, DICOMDIR_CLASS) == 0) {
				c->dicomdirs++;
			} else if (!valid_uid(hi->v[A_STUDY_UID]) || !valid_uid(hi->v[A_SERIES_UID]) ||
			           !hi->v[A_SOP_UID] || !*hi->v[A_SOP_UID]) {
				c->no_uids++;
				if (want_err)
					diana__log(DIANA_LOG_DEBUG, DOMAIN,
					           "folder: skipped a DICOM file without valid study, series "
					           "and instance UIDs (%zu so far)", c->no_uids);
			} else {
				int r = index_add(f, hi, w->rel[k], w->size[k], 0);
				w->rel[k] = NULL; /* taken over */
				if (r < 0)
					rc = r;
				else if (r == ADD_DUPLICATE)
					c->duplicates++;
			}
			header_dispose(hi);
		}
	}
	free(h);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* ordering                                                                  */
/* ------------------------------------------------------------------------ */

static const char *nz(const char *s)
{
	return s ? s : "";
}

static int cmp_number(const char *a, const char *b)
{
	char *ea, *eb;
	long long x = strtoll(nz(a), &ea, 10), y = strtoll(nz(b), &eb, 10);
	int ha = a && ea != a, hb = b && eb != b;
	if (ha != hb)
		return ha ? -1 : 1; /* numbered first */
	if (ha && x != y)
		return x < y ? -1 : 1;
	return 0;
}

static int study_cmp(const fo_study *a, const fo_study *b)
{
	int c;
	if (a == b)
		return 0;
	if ((c = strcmp(nz(a->v[A_STUDY_DATE]), nz(b->v[A_STUDY_DATE]))))
		return c;
	if ((c = strcmp(nz(a->v[A_STUDY_TIME]), nz(b->v[A_STUDY_TIME]))))
		return c;
	return strcmp(a->v[A_STUDY_UID], b->v[A_STUDY_UID]);
}

static int series_cmp(const fo_series *a, const fo_series *b)
{
	int c;
	if (a == b)
		return 0;
	if ((c = cmp_number(a->v[A_SERIES_NUMBER - A_SERIES], b->v[A_SERIES_NUMBER - A_SERIES])))
		return c;
	if ((c = strcmp(a->v[0], b->v[0])))
		return c;
	return a < b ? -1 : 1;
}

static int inst_cmp(const fo_instance *a, const fo_instance *b)
{
	int c;
	if (a == b)
		return 0;
	if ((c = cmp_number(a->v[A_INSTANCE_NUMBER - A_INSTANCE],
	                    b->v[A_INSTANCE_NUMBER - A_INSTANCE])))
		return c;
	return strcmp(a->v[0], b->v[0]);
}

/* one candidate answer */
typedef struct cand {
	fo_study *st;      /* patient level: the first study of the patient */
	fo_series *se;
	fo_instance *in;
	fo_study **group;  /* patient level: the patient's studies */
	size_t ngroup;
} cand;

static int cand_cmp(const void *pa, const void *pb)
{
	const cand *a = pa, *b = pb;
	int c;
	if (a->group || b->group) /* patients: by PatientID (then first study) */
		if ((c = strcmp(nz(a->st->v[A_PATIENT_ID]), nz(b->st->v[A_PATIENT_ID]))))
			return c;
	if ((c = study_cmp(a->st, b->st)))
		return c;
	if (a->se && b->se && (c = series_cmp(a->se, b->se)))
		return c;
	if (a->in && b->in)
		return inst_cmp(a->in, b->in);
	return 0;
}

static int study_ptr_cmp(const void *pa, const void *pb)
{
	const fo_study *a = *(fo_study *const *)pa, *b = *(fo_study *const *)pb;
	int c = strcmp(nz(a->v[A_PATIENT_ID]), nz(b->v[A_PATIENT_ID]));
	return c ? c : study_cmp(a, b);
}

static int series_ptr_cmp(const void *pa, const void *pb)
{
	return series_cmp(*(fo_series *const *)pa, *(fo_series *const *)pb);
}

static int inst_ptr_cmp(const void *pa, const void *pb)
{
	return inst_cmp(*(fo_instance *const *)pa, *(fo_instance *const *)pb);
}

/* ------------------------------------------------------------------------ */
/* find                                                                      */
/* ------------------------------------------------------------------------ */

/* where a key's value comes from */
enum {
	K_SKIP,    /* never matched (QueryRetrieveLevel, SpecificCharacterSet...) */
	K_ATTR,    /* an indexed attribute */
	K_TS,      /* the instance's transfer syntax */
	K_DERIVED, /* counts, modalities, SOP classes, availability */
	K_FILE     /* anything else: the header of a representative file */
};

typedef struct keyinfo {
	const diana__key *k;
	int src;
	int attr;   /* K_ATTR: index into ATTRS */
	int level;  /* the level whose records give the value (K_ATTR, K_DERIVED) */
} keyinfo;

static void classify(const diana__key *k, keyinfo *ki)
{
	ki->k = k;
	ki->attr = -1;
	ki->level = L_INSTANCE;
	switch (k->tag) {
	case TAG_SPECIFIC_CHARSET:
	case TAG_QR_LEVEL:
		ki->src = K_SKIP;
		return;
	case TAG_TRANSFER_SYNTAX:
		ki->src = K_TS;
		return;
	case TAG_PAT_STUDIES:
	case TAG_PAT_SERIES:
	case TAG_PAT_INSTANCES:
		ki->src = K_DERIVED;
		ki->level = L_PATIENT;
		return;
	case TAG_MODALITIES_IN_STUDY:
	case TAG_SOP_CLASSES_IN_STUDY:
	case TAG_STUDY_SERIES:
	case TAG_STUDY_INSTANCES:
		ki->src = K_DERIVED;
		ki->level = L_STUDY;
		return;
	case TAG_SERIES_INSTANCES:
		ki->src = K_DERIVED;
		ki->level = L_SERIES;
		return;
	case TAG_INSTANCE_AVAILABILITY:
		ki->src = K_DERIVED;
		ki->level = L_PATIENT;
		return;
	default:
		break;
	}
	ki->attr = attr_index(k->tag);
	if (ki->attr >= 0) {
		ki->src = K_ATTR;
		ki->level = attr_level(ki->attr);
		if (ki->level == L_PATIENT)
			ki->level = L_STUDY; /* held by the study record */
		return;
	}
	ki->src = K_FILE;
}

/* the context of one candidate while matching and answering */
typedef struct ctx {
	folder *f;
	int level;
	cand *c;
	diana_dataset *rep; /* representative header, opened on demand */
	int rep_rc;         /* 1: not tried yet */
	char num[32];
	diana__buf tmp;
} ctx;

static fo_instance *rep_instance(const cand *c)
{
	if (c->in)
		return c->in;
	if (c->se)
		return c->se->ninst ? c->se->inst[0] : NULL;
	const fo_study *st = c->st;
	for (size_t j = 0; j < st->nser; j++)
		if (st->ser[j]->ninst)
			return st->ser[j]->inst[0];
	return NULL;
}

static diana_dataset *ctx_rep(ctx *x)
{
	if (x->rep_rc == 1) {
		fo_instance *in = rep_instance(x->c);
		diana__buf p = DIANA__BUF_INIT;
		x->rep_rc = DIANA_ENOTFOUND;
		if (in) {
			diana__buf_printf(&p, "%s/%s", x->f->root, in->rel);
			x->rep_rc = p.oom ? DIANA_ENOMEM : open_header(p.data, &x->rep);
			diana__buf_dispose(&p);
		}
	}
	return x->rep_rc == 0 ? x->rep : NULL;
}

static void ctx_reset(ctx *x, cand *c)
{
	diana_dataset_free(x->rep);
	x->rep = NULL;
	x->rep_rc = 1;
	x->c = c;
}

static int str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* distinct values, sorted, joined with '\' into x->tmp */
static const char *distinct(ctx *x, const char **vals, size_t n)
{
	sort(vals, n, sizeof *vals, str_ptr_cmp);
	x->tmp.len = 0;
	diana__buf_puts(&x->tmp, "");
	for (size_t i = 0; i < n; i++) {
		if (!*vals[i] || (i && strcmp(vals[i], vals[i - 1]) == 0))
			continue;
		if (x->tmp.len)
			diana__buf_putc(&x->tmp, '\\');
		diana__buf_puts(&x->tmp, vals[i]);
	}
	return x->tmp.oom ? NULL : x->tmp.data;
}

static const char *study_set(ctx *x, const fo_study *st, int classes)
{
	size_t n = 0, cap = 0;
	const char **vals = NULL;
	const char *r;
	for (size_t j = 0; j < st->nser; j++) {
		const fo_series *se = st->ser[j];
		if (!se->ninst)
			continue;
		if (!classes) {
			if (grow((void **)&vals, &cap, n, sizeof *vals))
				goto oom;
			vals[n++] = nz(se->v[A_MODALITY - A_SERIES]);
			continue;
		}
		for (size_t k = 0; k < se->ninst; k++) {
			if (grow((void **)&vals, &cap, n, sizeof *vals))
				goto oom;
			vals[n++] = nz(se->inst[k]->v[A_SOP_CLASS - A_INSTANCE]);
		}
	}
	r = distinct(x, vals, n);
	free(vals);
	return r;
oom:
	free(vals);
	return NULL;
}

static size_t study_nseries(const fo_study *st)
{
	size_t n = 0;
	for (size_t j = 0; j < st->nser; j++)
		n += st->ser[j]->ninst != 0;
	return n;
}

static const char *ctx_number(ctx *x, size_t v)
{
	snprintf(x->num, sizeof x->num, "%zu", v);
	return x->num;
}

/*
 * The value of key `ki` for the candidate ("" when absent), or NULL on
 * allocation failure. Borrowed until the next call.
 */
static const char *ctx_value(ctx *x, const keyinfo *ki)
{
	cand *c = x->c;
	fo_instance *rep = c->in ? c->in : rep_instance(c);
	switch (ki->src) {
	case K_ATTR:
		if (ki->attr < A_SERIES)
			return nz(c->st->v[ki->attr]);
		/* a lower level's attribute above it: the first series' or instance's */
		if (ki->attr < A_INSTANCE) {
			const fo_series *se = c->se ? c->se : rep ? rep->series : NULL;
			return se ? nz(se->v[ki->attr - A_SERIES]) : "";
		}
		return rep ? nz(rep->v[ki->attr - A_INSTANCE]) : "";
	case K_TS:
		return rep ? nz(rep->ts) : "";
	case K_DERIVED:
		switch (ki->k->tag) {
		case TAG_INSTANCE_AVAILABILITY:
			return "ONLINE";
		case TAG_PAT_STUDIES:
		case TAG_PAT_SERIES:
		case TAG_PAT_INSTANCES: {
			size_t n = 0;
			fo_study *const *g = c->group ? c->group : &c->st;
			size_t ng = c->group ? c->ngroup : 1;
			for (size_t i = 0; i < ng; i++)
				n += ki->k->tag == TAG_PAT_STUDIES    ? 1
				     : ki->k->tag == TAG_PAT_SERIES ? study_nseries(g[i])
				                                     : g[i]->ninst;
			return ctx_number(x, n);
		}
		case TAG_MODALITIES_IN_STUDY:
			return study_set(x, c->st, 0);
		case TAG_SOP_CLASSES_IN_STUDY:
			return study_set(x, c->st, 1);
		case TAG_STUDY_SERIES:
			return ctx_number(x, study_nseries(c->st));
		case TAG_STUDY_INSTANCES:
			return ctx_number(x, c->st->ninst);
		case TAG_SERIES_INSTANCES:
			if (c->se)
				return ctx_number(x, c->se->ninst);
			return "";
		default:
			return "";
		}
		return "";
	case K_SKIP:
		return "";
	default:
		break;
	}
	/* from the representative file */
	{
		char key[16];
		char *v = NULL;
		const diana_dataset *ds = ctx_rep(x);
		if (!ds)
			return x->rep_rc == DIANA_ENOMEM ? NULL : "";
		snprintf(key, sizeof key, "%08X", (unsigned)ki->k->tag);
		if (diana_dataset_get(ds, key, &v) != 0)
			return "";
		x->tmp.len = 0;
		diana__buf_puts(&x->tmp, v);
		free(v);
		return x->tmp.oom ? NULL : x->tmp.data;
	}
}

/* DICOM matching; diana__key_matches() also tries each value of a
 * multi-valued attribute ("CT\\SR" matches ModalitiesInStudy=SR) */
static int value_matches(const diana__key *k, const char *value)
{
	return diana__key_matches(k, value) > 0;
}

/* An indexed attribute of a level below the candidate's (a series
 * attribute in a study query...): matches when one record in the
 * candidate's scope matches (a study "has" a CT series). */
static int attr_match_any(const cand *c, const keyinfo *k)
{
	fo_study *const *g = c->group ? c->group : &c->st;
	size_t ng = c->group ? c->ngroup : 1;
	for (size_t i = 0; i < ng; i++) {
		const fo_study *st = g[i];
		if (k->attr < A_SERIES) {
			if (value_matches(k->k, nz(st->v[k->attr])))
				return 1;
			continue;
		}
		for (size_t j = 0; j < st->nser; j++) {
			const fo_series *se = st->ser[j];
			if (!se->ninst || (c->se && se != c->se))
				continue;
			if (k->attr < A_INSTANCE) {
				if (value_matches(k->k, nz(se->v[k->attr - A_SERIES])))
					return 1;
				continue;
			}
			for (size_t n = 0; n < se->ninst; n++)
				if (value_matches(k->k, nz(se->inst[n]->v[k->attr - A_INSTANCE])))
					return 1;
		}
	}
	return 0;
}

/* 1 match, 0 no match, <0 error; only keys whose value comes from `level` or
 * above when `only_level` >= 0 (pruning of the upper levels) */
static int ctx_matches(ctx *x, const keyinfo *ki, size_t nk, int only_level)
{
	for (size_t i = 0; i < nk; i++) {
		const keyinfo *k = &ki[i];
		if (k->src == K_SKIP || !k->k->value || !*k->k->value)
			continue;
		if (strcmp(k->k->vr, "SQ") == 0)
			continue; /* sequence matching is not supported: universal */
		if (only_level >= 0) {
			if (k->src == K_FILE || k->src == K_TS)
				continue;
			if (k->level > only_level)
				continue;
		}
		if (k->src == K_ATTR && !x->c->in &&
		    (x->c->group || (k->level == L_SERIES && !x->c->se) || k->level == L_INSTANCE)) {
			if (!attr_match_any(x->c, k))
				return 0;
			continue;
		}
		const char *v = ctx_value(x, k);
		if (!v)
			return diana__error_oom();
		if (!value_matches(k->k, v))
			return 0;
	}
	return 1;
}

static int numeric_vr(const char *vr)
{
	static const char *const vrs[] = { "IS", "DS", "US", "SS", "UL", "SL", "FL", "FD",
	                                   "UV", "SV", NULL };
	for (int i = 0; vrs[i]; i++)
		if (strcmp(vr, vrs[i]) == 0)
			return 1;
	return 0;
}

static int numbers_parse(const char *v)
{
	while (*v) {
		char *end;
		while (*v == ' ')
			v++;
		strtod(v, &end);
		if (end == v)
			return 0;
		v = end;
		while (*v == ' ')
			v++;
		if (*v == '\\')
			v++;
		else if (*v)
			return 0;
	}
	return 1;
}

static int answerable_vr(const char *vr)
{
	static const char *const no[] = { "SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN", NULL };
	for (int i = 0; no[i]; i++)
		if (strcmp(vr, no[i]) == 0)
			return 0;
	return 1;
}

static int answer(ctx *x, const keyinfo *ki, size_t nk, diana_find_fn fn, void *user_data)
{
	diana__keys a = { NULL, 0 };
	diana_dataset *ds = NULL;
	cand *c = x->c;
	int rc = 0;

	for (size_t i = 0; i < nk && !rc; i++) {
		const diana__key *k = ki[i].k;
		if (k->tag == TAG_SPECIFIC_CHARSET || k->tag == TAG_QR_LEVEL || !answerable_vr(k->vr))
			continue;
		const char *v = ctx_value(x, &ki[i]);
		if (!v) {
			rc = diana__error_oom();
			break;
		}
		if (numeric_vr(k->vr) && !numbers_parse(v))
			v = "";
		rc = diana__keys_set(&a, k->tag, v);
	}
	if (!rc)
		rc = diana__keys_set(&a, TAG_QR_LEVEL, diana__level_name(x->level));
	if (!rc && x->level == L_PATIENT)
		rc = diana__keys_set(&a, 0x00100020, nz(c->st->v[A_PATIENT_ID]));
	if (!rc && x->level >= L_STUDY)
		rc = diana__keys_set(&a, 0x0020000D, c->st->v[A_STUDY_UID]);
	if (!rc && x->level >= L_SERIES)
		rc = diana__keys_set(&a, 0x0020000E, c->se->v[0]);
	if (!rc && x->level >= L_INSTANCE)
		rc = diana__keys_set(&a, 0x00080018, c->in->v[0]);
	if (!rc)
		rc = diana__keys_to_dataset(&a, &ds);
	if (rc == DIANA_EINVAL || rc == DIANA_EDICOM) {
		/* a value read from a nonconformant file does not fit its VR: leave
		 * out the values that cannot be encoded rather than fail the find */
		size_t blanked = 0;
		for (size_t i = 0; i < a.n; i++) {
			diana__keys one = { NULL, 0 };
			diana_dataset *t = NULL;
			if (!a.v[i].value || !*a.v[i].value)
				continue;
			int r = diana__keys_set(&one, a.v[i].tag, a.v[i].value);
			if (r == 0)
				r = diana__keys_to_dataset(&one, &t);
			diana_dataset_free(t);
			diana__keys_dispose(&one);
			if (r == DIANA_ENOMEM) {
				diana__keys_dispose(&a);
				return r;
			}
			if (r && (r = diana__keys_set(&a, a.v[i].tag, "")) == 0)
				blanked++;
		}
		diana__log(DIANA_LOG_DEBUG, DOMAIN, "folder: %zu values of an answer cannot be encoded",
		           blanked);
		rc = diana__keys_to_dataset(&a, &ds);
	}
	diana__keys_dispose(&a);
	if (rc)
		return rc;
	rc = fn(ds, user_data);
	diana_dataset_free(ds);
	if (rc)
		return rc < 0 ? rc : diana__error_set(DIANA_EUSER, "the callback stopped the find");
	return 0;
}

static int push_cand(cand **v, size_t *n, size_t *cap, cand c)
{
	int rc = grow((void **)v, cap, *n, sizeof **v);
	if (rc)
		return rc;
	(*v)[(*n)++] = c;
	return 0;
}

/* the single UID a key names when it holds one plain UID, else NULL */
static const char *single_uid(const keyinfo *ki, size_t nk, uint32_t tag)
{
	for (size_t i = 0; i < nk; i++) {
		const char *v = ki[i].k->value;
		if (ki[i].k->tag == tag && v && *v && !strpbrk(v, "\\*?-"))
			return v;
	}
	return NULL;
}

static int folder_find(diana_session *s, int level, const diana__keys *keys, diana_find_fn fn,
                       void *user_data, size_t *count)
{
	folder *f = s->impl;
	keyinfo *ki = NULL;
	cand *cands = NULL;
	fo_study **sorted = NULL;
	size_t nc = 0, capc = 0, delivered = 0, nk = keys ? keys->n : 0;
	ctx x;
	int rc = 0;

	if (level < DIANA_LEVEL_PATIENT || level > DIANA_LEVEL_INSTANCE)
		return diana__error_set(DIANA_EINVAL, "invalid query level %d", level);
	memset(&x, 0, sizeof x);
	x.f = f;
	x.level = level;
	x.rep_rc = 1;
	if (nk && !(ki = diana__calloc(nk, sizeof *ki)))
		return DIANA_ENOMEM;
	for (size_t i = 0; i < nk; i++)
		classify(&keys->v[i], &ki[i]);

	if (level == DIANA_LEVEL_PATIENT) {
		/* patients: studies grouped by PatientID */
		if (f->nstudies && !(sorted = diana__calloc(f->nstudies, sizeof *sorted))) {
			rc = DIANA_ENOMEM;
			goto out;
		}
		size_t ns = 0;
		for (size_t i = 0; i < f->nstudies; i++)
			if (f->studies[i]->ninst)
				sorted[ns++] = f->studies[i];
		sort(sorted, ns, sizeof *sorted, study_ptr_cmp);
		for (size_t i = 0; i < ns && !rc;) {
			size_t j = i + 1;
			while (j < ns && strcmp(nz(sorted[j]->v[A_PATIENT_ID]),
			                        nz(sorted[i]->v[A_PATIENT_ID])) == 0)
				j++;
			cand c = { sorted[i], NULL, NULL, sorted + i, j - i };
			ctx_reset(&x, &c);
			rc = ctx_matches(&x, ki, nk, -1);
			if (rc > 0)
				rc = push_cand(&cands, &nc, &capc, c);
			i = j;
		}
	} else {
		const char *su = single_uid(ki, nk, 0x0020000D);
		const char *seu = single_uid(ki, nk, 0x0020000E);
		const char *sopu = single_uid(ki, nk, 0x00080018);
		for (size_t i = 0; i < f->nstudies && rc >= 0; i++) {
			fo_study *st = f->studies[i];
			if (!st->ninst || (su && strcmp(su, st->v[A_STUDY_UID]) != 0))
				continue;
			cand c = { st, NULL, NULL, NULL, 0 };
			ctx_reset(&x, &c);
			if (level == DIANA_LEVEL_STUDY) {
				rc = ctx_matches(&x, ki, nk, -1);
				if (rc > 0)
					rc = push_cand(&cands, &nc, &capc, c);
				continue;
			}
			if ((rc = ctx_matches(&x, ki, nk, L_STUDY)) <= 0)
				continue;
			for (size_t j = 0; j < st->nser && rc >= 0; j++) {
				fo_series *se = st->ser[j];
				if (!se->ninst || (seu && strcmp(seu, se->v[0]) != 0))
					continue;
				c.se = se;
				c.in = NULL;
				ctx_reset(&x, &c);
				if (level == DIANA_LEVEL_SERIES) {
					rc = ctx_matches(&x, ki, nk, -1);
					if (rc > 0)
						rc = push_cand(&cands, &nc, &capc, c);
					continue;
				}
				if ((rc = ctx_matches(&x, ki, nk, L_SERIES)) <= 0)
					continue;
				for (size_t k = 0; k < se->ninst && rc >= 0; k++) {
					fo_instance *in = se->inst[k];
					if (sopu && strcmp(sopu, in->v[0]) != 0)
						continue;
					c.in = in;
					ctx_reset(&x, &c);
					rc = ctx_matches(&x, ki, nk, -1);
					if (rc > 0)
						rc = push_cand(&cands, &nc, &capc, c);
				}
			}
		}
	}
	if (rc < 0)
		goto out;
	rc = 0;
	sort(cands, nc, sizeof *cands, cand_cmp);
	for (size_t i = 0; i < nc; i++) {
		if (diana__session_cancelled(s)) {
			rc = DIANA_ECANCELLED;
			break;
		}
		ctx_reset(&x, &cands[i]);
		if ((rc = answer(&x, ki, nk, fn, user_data)))
			break;
		delivered++;
	}
out:
	ctx_reset(&x, NULL);
	diana__buf_dispose(&x.tmp);
	free(cands);
	free(sorted);
	free(ki);
	if (count)
		*count = delivered;
	return rc;
}

/* ------------------------------------------------------------------------ */
/* retrieve                                                                  */
/* ------------------------------------------------------------------------ */

static int folder_retrieve(diana_session *s, const char *study_uid, const char *series_uid,
                           const char *sop_uid, diana_instance_fn fn, void *user_data,
                           diana_transfer_stats *stats)
{
	folder *f = s->impl;
	fo_instance **list = NULL;
	size_t n = 0, cap = 0;
	diana__buf p = DIANA__BUF_INIT;
	int rc = 0, first_err = 0;

	if (study_uid && !*study_uid)
		study_uid = NULL;
	if (series_uid && !*series_uid)
		series_uid = NULL;
	if (sop_uid && !*sop_uid)
		sop_uid = NULL;
	if (sop_uid) {
		fo_instance *in = map_get(&f->inst_map, sop_uid);
		if (in && in->series && (!series_uid || strcmp(series_uid, in->series->v[0]) == 0) &&
		    (!study_uid || strcmp(study_uid, in->series->study->v[A_STUDY_UID]) == 0)) {
			if (!(list = diana__malloc(sizeof *list)))
				return DIANA_ENOMEM;
			list[n++] = in;
		}
	} else if (series_uid || study_uid) {
		fo_study *st = study_uid ? map_get(&f->study_map, study_uid) : NULL;
		fo_series **ser = NULL;
		size_t nser = 0;
		fo_series *one = NULL;
		if (series_uid) {
			one = map_get(&f->series_map, series_uid);
			if (one && st && one->study != st) {
				one = NULL;
				for (size_t j = 0; j < st->nser; j++)
					if (strcmp(st->ser[j]->v[0], series_uid) == 0)
						one = st->ser[j];
			}
			if (one && study_uid && strcmp(one->study->v[A_STUDY_UID], study_uid) != 0)
				one = NULL;
			if (one) {
				ser = &one;
				nser = 1;
			}
		} else if (st) {
			ser = diana__malloc((st->nser ? st->nser : 1) * sizeof *ser);
			if (!ser)
				return DIANA_ENOMEM;
			if (st->nser)
				memcpy(ser, st->ser, st->nser * sizeof *ser);
			nser = st->nser;
			sort(ser, nser, sizeof *ser, series_ptr_cmp);
		}
		for (size_t j = 0; j < nser && !rc; j++) {
			size_t start = n;
			for (size_t k = 0; k < ser[j]->ninst && !rc; k++) {
				if (!(rc = grow((void **)&list, &cap, n, sizeof *list)))
					list[n++] = ser[j]->inst[k];
			}
			if (!rc)
				sort(list + start, n - start, sizeof *list, inst_ptr_cmp);
		}
		if (ser != &one)
			free(ser);
		if (rc) {
			free(list);
			return rc;
		}
	} else {
		return diana__error_set(DIANA_EINVAL, "nothing to retrieve: no UID given");
	}
	if (!n) {
		free(list);
		return diana__error_set(DIANA_ENOTFOUND, "no such %s in the folder",
		                        sop_uid ? "instance" : series_uid ? "series" : "study");
	}
	for (size_t i = 0; i < n; i++) {
		fo_instance *in = list[i];
		struct stat st;
		if (diana__session_cancelled(s)) {
			rc = DIANA_ECANCELLED;
			break;
		}
		p.len = 0;
		diana__buf_printf(&p, "%s/%s", f->root, in->rel);
		if (p.oom) {
			rc = diana__error_oom();
			break;
		}
		if (stat(p.data, &st) < 0 || !S_ISREG(st.st_mode)) {
			/* removed or replaced since the folder was indexed */
			int e = diana__error_set(errno == ENOENT ? DIANA_ENOTFOUND : DIANA_EIO,
			                         "an indexed file is gone from the folder");
			stats->failed++;
			if (!first_err)
				first_err = e;
			continue;
		}
		diana_instance inst = { DIANA_INSTANCE_VERSION,
			                    p.data,
			                    in->v[0],
			                    nz(in->v[A_SOP_CLASS - A_INSTANCE]),
			                    nz(in->ts),
			                    (uint64_t)st.st_size,
			                    0 };
		int r = fn(&inst, user_data);
		stats->instances++;
		stats->bytes += (uint64_t)st.st_size;
		if (r) {
			rc = r < 0 ? r : diana__error_set(DIANA_EUSER, "the callback stopped the retrieve");
			break;
		}
	}
	diana__buf_dispose(&p);
	free(list);
	if (!rc && first_err)
		rc = diana__error_set(first_err, "%u indexed files are gone from the folder",
		                      (unsigned)stats->failed);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* store                                                                     */
/* ------------------------------------------------------------------------ */

static int mkdir_one(const char *path)
{
	struct stat st;
	if (mkdir(path, 0700) == 0)
		return 0;
	if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	return diana__error_errno(errno == EEXIST ? ENOTDIR : errno, "cannot create a folder");
}

static int copy_atomic(const char *src, const char *dest, char *buf, size_t bufsize,
                       uint64_t *size)
{
	diana__atomic_file af;
	struct stat st;
	uint64_t total = 0;
	int rc, fd = open(src, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return diana__error_errno(errno, "cannot open file");
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return diana__error_set(DIANA_EIO, "not a regular file");
	}
	if ((rc = diana__atomic_open(&af, dest))) {
		close(fd);
		return rc;
	}
	for (;;) {
		ssize_t r = read(fd, buf, bufsize);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = diana__error_errno(errno, "cannot read file");
			break;
		}
		if (r == 0)
			break;
		if ((rc = diana__atomic_write(&af, buf, (size_t)r)))
			break;
		total += (uint64_t)r;
	}
	close(fd);
	if (rc) {
		diana__atomic_abort(&af);
		return rc;
	}
	if ((rc = diana__atomic_commit(&af)))
		return rc;
	*size = total;
	return 0;
}

static int store_one(folder *f, const char *path, char *buf, size_t bufsize, uint64_t *size)
{
	header h;
	diana__buf dest = DIANA__BUF_INIT;
	size_t root_len, study_end, series_end;
	char *rel;
	int rc;

	read_header(path, &h, 0);
	if (h.rc) {
		rc = h.rc;
		if (rc != DIANA_ENOTFOUND && rc != DIANA_EIO && rc != DIANA_ENOMEM &&
		    rc != DIANA_EDICOM) {
			char msg[256];
			snprintf(msg, sizeof msg, "%s", diana_error_message());
			rc = diana__error_set(DIANA_EDICOM, "not a DICOM file: %s", msg);
		}
		header_dispose(&h);
		return rc;
	}
	if (h.media_class && strcmp(h.media_class, DICOMDIR_CLASS) == 0) {
		header_dispose(&h);
		return diana__error_set(DIANA_EDICOM, "a DICOMDIR is not an instance");
	}
	if (!valid_uid(h.v[A_STUDY_UID]) || !valid_uid(h.v[A_SERIES_UID]) ||
	    !valid_uid(h.v[A_SOP_UID])) {
		rc = diana__error_set(DIANA_EDICOM, "%s missing or not a valid UID",
		                      !valid_uid(h.v[A_STUDY_UID])    ? "StudyInstanceUID"
		                      : !valid_uid(h.v[A_SERIES_UID]) ? "SeriesInstanceUID"
		                                                       : "SOPInstanceUID");
		header_dispose(&h);
		return rc;
	}
	diana__buf_printf(&dest, "%s/", f->root);
	root_len = dest.len;
	diana__buf_puts(&dest, h.v[A_STUDY_UID]);
	study_end = dest.len;
	diana__buf_printf(&dest, "/%s", h.v[A_SERIES_UID]);
	series_end = dest.len;
	diana__buf_printf(&dest, "/%s.dcm", h.v[A_SOP_UID]);
	if (dest.oom) {
		rc = diana__error_oom();
		goto out;
	}
	dest.data[study_end] = 0;
	rc = mkdir_one(dest.data);
	dest.data[study_end] = '/';
	if (rc)
		goto out;
	dest.data[series_end] = 0;
	rc = mkdir_one(dest.data);
	dest.data[series_end] = '/';
	if (rc)
		goto out;
	if ((rc = copy_atomic(path, dest.data, buf, bufsize, size)))
		goto out;
	if (!(rel = diana__strdup(dest.data + root_len))) {
		rc = DIANA_ENOMEM;
		goto out;
	}
	rc = index_add(f, &h, rel, *size, 1);
	if (rc > 0)
		rc = 0;
out:
	diana__buf_dispose(&dest);
	header_dispose(&h);
	return rc;
}

#define COPY_BUF (1u << 20)

static int folder_store(diana_session *s, const char *const *paths, size_t n, diana_store_fn fn,
                        void *user_data, diana_transfer_stats *stats)
{
	folder *f = s->impl;
	char *buf = diana__malloc(COPY_BUF);
	char first_msg[512] = "";
	int first_err = 0, rc = 0;

	if (!buf)
		return DIANA_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		uint64_t size = 0;
		int st;
		if (diana__session_cancelled(s)) {
			rc = DIANA_ECANCELLED;
			break;
		}
		st = paths[i] ? store_one(f, paths[i], buf, COPY_BUF, &size)
		              : diana__error_set(DIANA_EINVAL, "NULL path");
		if (st) {
			stats->failed++;
			if (!first_err) {
				first_err = st;
				snprintf(first_msg, sizeof first_msg, "%s", diana_error_message());
			}
		} else {
			stats->instances++;
			stats->bytes += size;
		}
		if (fn && fn(i, paths[i], st, user_data)) {
			rc = diana__error_set(DIANA_EUSER, "the callback stopped the store");
			break;
		}
	}
	free(buf);
	if (rc)
		return rc;
	if (first_err)
		return diana__error_set(first_err, "%s", first_msg);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* echo, changes, free, open                                                 */
/* ------------------------------------------------------------------------ */

static int folder_echo(diana_session *s)
{
	folder *f = s->impl;
	struct stat st;
	if (stat(f->root, &st) < 0 || !S_ISDIR(st.st_mode) || access(f->root, R_OK | X_OK) < 0)
		return diana__error_set(DIANA_ENOTFOUND, "the folder is not readable");
	return 0;
}

static int folder_changes(diana_session *s, int64_t since, uint32_t limit, diana_change_fn fn,
                          void *user_data, int64_t *last, int *done)
{
	return diana__error_set(DIANA_EUNSUPPORTED, "a folder session has no change log");
}

static void folder_free(diana_session *s)
{
	folder_dispose(s->impl);
	s->impl = NULL;
}

static const diana__session_ops folder_ops = {
	.name = "folder",
	.echo = folder_echo,
	.find = folder_find,
	.retrieve = folder_retrieve,
	.store = folder_store,
	.changes = folder_changes,
	.cancel = NULL,
	.free = folder_free,
};

int diana__folder_open(diana_session *s, const char *dir)
{
	folder *f;
	walk w;
	index_counts c = { 0, 0, 0, 0 };
	diana__buf path = DIANA__BUF_INIT;
	struct stat st;
	int64_t t0 = diana__now_ms();
	size_t len;
	int rc;

	if (!s || !dir || !*dir)
		return diana__error_set(DIANA_EINVAL, "no folder given");
	if (stat(dir, &st) < 0)
		return diana__error_set(errno == ENOENT || errno == ENOTDIR ? DIANA_ENOTFOUND
		                                                              : diana__errno_code(errno),
		                        "folder not found");
	if (!S_ISDIR(st.st_mode))
		return diana__error_set(DIANA_ENOTFOUND, "not a folder");
	if (!(f = diana__calloc(1, sizeof *f)))
		return DIANA_ENOMEM;
	len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (!(f->root = diana__strndup(dir, len))) {
		free(f);
		return DIANA_ENOMEM;
	}

	memset(&w, 0, sizeof w);
	w.s = s;
	{
		char key[64];
		char *k;
		snprintf(key, sizeof key, "%llx:%llx", (unsigned long long)st.st_dev,
		         (unsigned long long)st.st_ino);
		k = diana__strdup(key);
		if (!k || grow((void **)&w.seen_keys, &w.cap_seen, 0, sizeof *w.seen_keys)) {
			free(k);
			rc = DIANA_ENOMEM;
			goto fail;
		}
		w.seen_keys[w.nseen++] = k;
		if ((rc = map_put(&w.seen_dirs, k, k)))
			goto fail;
	}
	/* relative paths are taken after "<root>/" */
	diana__buf_puts(&path, f->root);
	if (path.oom) {
		rc = diana__error_oom();
		goto fail;
	}
	rc = walk_dir(&w, &path, strcmp(f->root, "/") == 0 ? 1 : path.len + 1, 0);
	diana__buf_dispose(&path);
	if (rc)
		goto fail;
	if ((rc = index_files(f, &w, &c, s)))
		goto fail;
	diana__log(DIANA_LOG_INFO, DOMAIN,
	           "folder indexed in %lld ms: %zu instances, %zu studies, from %zu files; "
	           "skipped: %zu not DICOM, %zu DICOMDIR, %zu without UIDs, %zu duplicate "
	           "instances, %zu other entries, %zu unreadable folders",
	           (long long)(diana__now_ms() - t0), f->ninstances, f->nstudies, w.n,
	           c.not_dicom, c.dicomdirs + w.dicomdirs, c.no_uids, c.duplicates,
	           w.skipped_entries, w.unreadable_dirs);
	walk_dispose(&w);
	s->impl = f;
	s->ops = &folder_ops;
	return 0;
fail:
	diana__buf_dispose(&path);
	walk_dispose(&w);
	folder_dispose(f);
	return rc;
}
