/*
 * libdiana - the de-identification engine: PS3.15 Annex E Basic
 * Application Level Confidentiality Profile with its options, applied to
 * every element of a dataset at any depth (doc/deid.md is the user's view).
 *
 * One walk over the dataset (lib/dicom/edit.h) decides, element by
 * element: file meta -> group lengths -> pixel data (never touched) ->
 * per-attribute overrides -> private elements (safe list) -> overlays ->
 * the table row under the options -> elements the table does not list
 * (kept, unless inside a sequence being cleaned or dummied). Then the
 * de-identification attributes are added and the key row is written.
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "../core/core.h"
#include "../dicom/dicom.h"
#include "../dicom/edit.h"
#include "engine.h"
#include "table.h"

#define TAG(g, e) ((uint32_t)(((uint32_t)(g) << 16) | (uint32_t)(e)))
#define T_PATIENT_NAME TAG(0x0010, 0x0010)
#define T_PATIENT_ID TAG(0x0010, 0x0020)

#define DUMMY_TEXT "ANONYMIZED"
#define DUMMY_DA "19000101"
#define DUMMY_DT "19000101000000"
#define DUMMY_TM "000000"

const char *const diana__deid_dummy_values[] = {
	DUMMY_TEXT, DUMMY_DA, DUMMY_DT, DUMMY_TM, "0", "000D", "urn:x-diana:anonymized",
	"YES", "REMOVED", "MODIFIED", "UNMODIFIED", NULL,
};

/* how the values inside a sequence item are treated */
enum { MODE_NORMAL = 0, MODE_CLEAN = 1, MODE_DUMMY = 2 };

/* PS3.16 CID 7050, in DIANA_DEID_* bit order */
static const struct method_code {
	const char *value;
	const char *meaning;
} method_codes[DIANA__NOPTIONS] = {
	{ "113111", "Retain Safe Private Option" },
	{ "113110", "Retain UIDs Option" },
	{ "113109", "Retain Device Identity Option" },
	{ "113112", "Retain Institution Identity Option" },
	{ "113108", "Retain Patient Characteristics Option" },
	{ "113106", "Retain Longitudinal Temporal Information Full Dates Option" },
	{ "113107", "Retain Longitudinal Temporal Information Modified Dates Option" },
	{ "113105", "Clean Descriptors Option" },
	{ "113104", "Clean Structured Content Option" },
	{ "113103", "Clean Graphics Option" },
};
/* bits 0..6 are the Retain options, 7..9 the Clean ones */
#define IS_RETAIN_OPTION(k) ((k) < 7)
static const struct method_code basic_code = { "113100", "Basic Application Confidentiality Profile" };
#define BASIC_METHOD "PS3.15 Basic Application Level Confidentiality Profile"

static int text_is(const char *v, size_t len, const char *s)
{
	return strlen(s) == len && strncasecmp(v, s, len) == 0;
}

int diana__deid_is_method_text(const char *v, size_t len)
{
	if (text_is(v, len, BASIC_METHOD) || text_is(v, len, basic_code.meaning) ||
	    text_is(v, len, "libdiana per-attribute overrides") ||
	    text_is(v, len, "libdiana " DIANA_VERSION_STRING))
		return 1;
	for (int i = 0; i < DIANA__NOPTIONS; i++)
		if (text_is(v, len, method_codes[i].meaning))
			return 1;
	return 0;
}

typedef struct ctx {
	const diana_profile *p;
	uint32_t opt;
	char *pkey;          /* patient key: "id:<PatientID>", or a fallback */
	char pid[DIANA__CODE_LEN + 1];
	char name[DIANA__NAME_MAX];
	const char *orig_name; /* top-level PatientName, UTF-8, or NULL */
	int shift;           /* days, with RETAIN_LONG_MODIFIED_DATES */
	uint8_t *modes;      /* modes[d]: mode of the elements at depth d */
	size_t nmodes;
	int inner;           /* mode for the items of the sequence just decided */
} ctx;

/* ---- VR classes ----------------------------------------------------------- */

static int vr_is(const char *vr, const char *list)
{
	for (const char *p = list;; p += 3) {
		if (vr[0] == p[0] && vr[1] == p[1])
			return 1;
		if (!p[2])
			return 0;
	}
}

#define VR_TEXT "AE,AS,CS,DA,DS,DT,IS,LO,LT,PN,SH,ST,TM,UC,UI,UR,UT"
#define VR_CHARSET "LO,LT,PN,SH,ST,UC,UT"
#define VR_SINGLE "LT,ST,UR,UT"                  /* no value multiplicity: '\' is text */
#define VR_LEADING "AE,AS,CS,DA,DS,DT,IS,LO,SH,TM,UI" /* leading spaces not significant */
#define VR_FREE "AE,LO,LT,SH,ST,UC,UR,UT"       /* free text (PN apart) */
#define VR_NUMBERS "AT,FD,FL,OB,OD,OF,OL,OV,OW,SL,SS,SV,UL,US,UV"

static int is_sq(const diana__edit_element *el)
{
	return el->vr[0] == 'S' && el->vr[1] == 'Q';
}

/* ---- values ---------------------------------------------------------------- */

typedef struct vals {
	char **v;
	size_t n;
} vals;

static void vals_free(vals *vs)
{
	for (size_t i = 0; i < vs->n; i++)
		free(vs->v[i]);
	free(vs->v);
	vs->v = NULL;
	vs->n = 0;
}

static int vals_push(vals *vs, const char *s, size_t len)
{
	char **n = realloc(vs->v, (vs->n + 1) * sizeof *n);
	if (!n)
		return diana__error_oom();
	vs->v = n;
	if (!(vs->v[vs->n] = diana__strndup(s, len)))
		return DIANA_ENOMEM;
	vs->n++;
	return 0;
}

/*
 * The element's values as text: UTF-8 for character-set VRs (raw bytes
 * when they cannot be decoded: the text is then only hashed, never
 * written), split on '\' for multi-valued VRs, padding trimmed as
 * diana_dataset_get() does.
 */
static int el_values(const diana__edit_element *el, vals *out)
{
	char *text = NULL;
	const char *p, *end;
	int rc = 0, single = vr_is(el->vr, VR_SINGLE), leading = vr_is(el->vr, VR_LEADING);

	out->v = NULL;
	out->n = 0;
	if (el->value && el->length && vr_is(el->vr, VR_CHARSET)) {
		if (diana__charset_to_utf8(el->charset, (const char *)el->value, el->length,
		                           el->vr[0] == 'P' && el->vr[1] == 'N', &text) < 0) {
			diana_error_clear();
			text = NULL;
		}
	}
	if (!text && !(text = diana__strndup(el->value ? (const char *)el->value : "", el->length)))
		return DIANA_ENOMEM;
	p = text;
	end = text + strlen(text);
	for (;;) {
		const char *q = single ? end : memchr(p, '\\', (size_t)(end - p));
		const char *ve = q ? q : end, *vb = p;
		while (ve > vb && (ve[-1] == ' ' || ve[-1] == '\0'))
			ve--;
		while (leading && vb < ve && *vb == ' ')
			vb++;
		if ((rc = vals_push(out, vb, (size_t)(ve - vb))) < 0)
			break;
		if (!q || q == end)
			break;
		p = q + 1;
	}
	free(text);
	if (rc < 0)
		vals_free(out);
	return rc;
}

/* hand a NUL-terminated string to the dataset as the new value */
static int give(const char *s, size_t len, uint8_t **nv, size_t *nl)
{
	uint8_t *b = diana__malloc(len ? len : 1);
	if (!b)
		return DIANA_ENOMEM;
	memcpy(b, s, len);
	*nv = b;
	*nl = len;
	return DIANA__EDIT_REPLACE;
}

static int give_str(const char *s, uint8_t **nv, size_t *nl)
{
	return give(s, strlen(s), nv, nl);
}

static int give_buf(diana__buf *b, uint8_t **nv, size_t *nl)
{
	size_t len;
	char *s;
	if (b->oom) {
		diana__buf_dispose(b);
		return DIANA_ENOMEM;
	}
	if (!b->len) {
		diana__buf_dispose(b);
		return DIANA__EDIT_EMPTY;
	}
	s = diana__buf_detach(b, &len);
	*nv = (uint8_t *)s;
	*nl = len;
	return DIANA__EDIT_REPLACE;
}

static int give_zeros(size_t len, uint8_t **nv, size_t *nl)
{
	uint8_t *b = diana__calloc(1, len ? len : 1);
	if (!b)
		return DIANA_ENOMEM;
	*nv = b;
	*nl = len;
	return len ? DIANA__EDIT_REPLACE : DIANA__EDIT_EMPTY;
}

/* ---- pseudonyms ------------------------------------------------------------ */

static int map_uids(ctx *c, const diana__edit_element *el, uint8_t **nv, size_t *nl)
{
	diana__buf b = DIANA__BUF_INIT;
	const char *p = (const char *)el->value, *end = p + (el->value ? el->length : 0);
	char uid[DIANA__UID_MAX + 1];
	int first = 1, rc;

	if (!el->value || !el->length)
		return DIANA__EDIT_KEEP; /* empty stays empty */
	while (p <= end) {
		const char *q = memchr(p, '\\', (size_t)(end - p));
		const char *ve = q ? q : end, *vb = p;
		while (vb < ve && (*vb == ' ' || *vb == '\0'))
			vb++;
		while (ve > vb && (ve[-1] == ' ' || ve[-1] == '\0'))
			ve--;
		if (!first)
			diana__buf_putc(&b, '\\');
		first = 0;
		if (ve > vb) {
			if ((rc = diana__mint_uid(c->p->mint, vb, (size_t)(ve - vb), uid)) < 0) {
				diana__buf_dispose(&b);
				return rc;
			}
			diana__buf_puts(&b, uid);
		}
		if (!q)
			break;
		p = q + 1;
	}
	return give_buf(&b, nv, nl);
}

/* sham name of one person name value */
static int sham_of(ctx *c, uint32_t tag, const char *value, char out[DIANA__NAME_MAX])
{
	if (tag == T_PATIENT_NAME && (!*value || (c->orig_name && !strcmp(value, c->orig_name)))) {
		memcpy(out, c->name, DIANA__NAME_MAX);
		return 0;
	}
	return diana__mint_name(c->p->mint, value, strlen(value), value, out);
}

static int map_names(ctx *c, const diana__edit_element *el, uint8_t **nv, size_t *nl)
{
	diana__buf b = DIANA__BUF_INIT;
	char name[DIANA__NAME_MAX];
	vals vs;
	int rc = el_values(el, &vs);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < vs.n; i++) {
		if ((rc = sham_of(c, el->tag, vs.v[i], name)) < 0)
			break;
		if (i)
			diana__buf_putc(&b, '\\');
		diana__buf_puts(&b, name);
	}
	vals_free(&vs);
	if (rc < 0) {
		diana__buf_dispose(&b);
		return rc;
	}
	return give_buf(&b, nv, nl);
}

/* keyed codes for identifiers; the top-level Patient ID gets the patient's */
static int map_ids(ctx *c, const diana__edit_element *el, int dummy, uint8_t **nv, size_t *nl)
{
	diana__buf b = DIANA__BUF_INIT;
	char code[DIANA__CODE_LEN + 1];
	vals vs;
	int rc = el_values(el, &vs), any = 0;

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < vs.n; i++) {
		const char *v = vs.v[i];
		if (i)
			diana__buf_putc(&b, '\\');
		if (el->tag == T_PATIENT_ID && !*v && el->depth == 0) {
			diana__buf_puts(&b, c->pid);
			any = 1;
			continue;
		}
		if (!*v && !dummy)
			continue;
		if ((rc = diana__mint_code(c->p->mint, "id:", v, strlen(v), code)) < 0)
			break;
		diana__buf_puts(&b, code);
		any = 1;
	}
	vals_free(&vs);
	if (rc < 0 || !any) {
		diana__buf_dispose(&b);
		return rc < 0 ? rc : DIANA__EDIT_EMPTY;
	}
	return give_buf(&b, nv, nl);
}

/* ---- dates ------------------------------------------------------------------- */

static int dummy_of_vr(ctx *c, const diana__edit_element *el, uint8_t **nv, size_t *nl);

static int shift_dates(ctx *c, const diana__edit_element *el, uint8_t **nv, size_t *nl)
{
	diana__buf b = DIANA__BUF_INIT;
	int is_da = el->vr[0] == 'D' && el->vr[1] == 'A';
	vals vs;
	int rc;

	if (!(is_da || (el->vr[0] == 'D' && el->vr[1] == 'T')))
		return DIANA__EDIT_KEEP; /* times and offsets do not move with whole days */
	if ((rc = el_values(el, &vs)) < 0)
		return rc;
	for (size_t i = 0; i < vs.n; i++) {
		const char *v = vs.v[i];
		size_t len = strlen(v);
		char *out = diana__malloc(len + 9);
		if (!out) {
			rc = DIANA_ENOMEM;
			break;
		}
		if (i)
			diana__buf_putc(&b, '\\');
		if (len && (is_da ? diana__shift_da(v, len, c->shift, out)
		                  : diana__shift_dt(v, len, c->shift, out, len + 9)) == 0)
			diana__buf_puts(&b, out);
		/* an unreadable date is not kept: it becomes empty */
		free(out);
	}
	vals_free(&vs);
	if (rc < 0) {
		diana__buf_dispose(&b);
		return rc;
	}
	return give_buf(&b, nv, nl);
}

/* ---- dummies ------------------------------------------------------------------ */

static int dummy_of_vr(ctx *c, const diana__edit_element *el, uint8_t **nv, size_t *nl)
{
	const char *vr = el->vr;

	if (vr_is(vr, "UI"))
		return map_uids(c, el, nv, nl);
	if (vr_is(vr, "PN"))
		return map_names(c, el, nv, nl);
	if (vr_is(vr, "DA"))
		return give_str(DUMMY_DA, nv, nl);
	if (vr_is(vr, "DT"))
		return give_str(DUMMY_DT, nv, nl);
	if (vr_is(vr, "TM"))
		return give_str(DUMMY_TM, nv, nl);
	if (vr_is(vr, "DS,IS"))
		return give_str("0", nv, nl);
	if (vr_is(vr, "AS"))
		return give_str("000D", nv, nl);
	if (vr_is(vr, "UR"))
		return give_str("urn:x-diana:anonymized", nv, nl);
	if (vr_is(vr, VR_TEXT))
		return give_str(DUMMY_TEXT, nv, nl);
	if (vr_is(vr, VR_NUMBERS))
		return give_zeros(el->length, nv, nl);
	return DIANA__EDIT_REMOVE; /* UN and anything unknown */
}

/* ---- actions -------------------------------------------------------------------- */

static int dates_action(ctx *c, const diana__edit_element *el, uint8_t **nv, size_t *nl)
{
	if (c->opt & DIANA_DEID_RETAIN_LONG_FULL_DATES)
		return DIANA__EDIT_KEEP;
	if (c->opt & DIANA_DEID_RETAIN_LONG_MODIFIED_DATES)
		return shift_dates(c, el, nv, nl);
	return dummy_of_vr(c, el, nv, nl);
}

static int max_mode(int a, int b)
{
	return a > b ? a : b;
}

static int apply(ctx *c, const diana__edit_element *el, diana__act act, const diana__deid_row *row,
                 int mode, uint8_t **nv, size_t *nl)
{
	int id = row && (row->flags & DIANA__ROW_ID) && vr_is(el->vr, "LO,SH,CS,UC,LT,ST,UT");
	int pn = vr_is(el->vr, "PN");

	switch (act) {
	case DIANA__ACT_KEEP:
		return DIANA__EDIT_KEEP;
	case DIANA__ACT_REMOVE:
		return DIANA__EDIT_REMOVE;
	case DIANA__ACT_EMPTY:
		/* Z allows a dummy: the patient's name and identifiers get pseudonyms */
		if (is_sq(el))
			return DIANA__EDIT_EMPTY;
		if (el->tag == T_PATIENT_NAME && pn)
			return map_names(c, el, nv, nl);
		if (id || el->tag == T_PATIENT_ID)
			return map_ids(c, el, 0, nv, nl);
		return DIANA__EDIT_EMPTY;
	case DIANA__ACT_DUMMY:
		if (is_sq(el)) {
			c->inner = MODE_DUMMY;
			return DIANA__EDIT_KEEP;
		}
		if (id || el->tag == T_PATIENT_ID)
			return map_ids(c, el, 1, nv, nl);
		return dummy_of_vr(c, el, nv, nl);
	case DIANA__ACT_CLEAN:
		if (is_sq(el)) {
			c->inner = max_mode(mode, MODE_CLEAN);
			return DIANA__EDIT_KEEP;
		}
		if (vr_is(el->vr, "DA,DT,TM"))
			return dates_action(c, el, nv, nl);
		if (pn || vr_is(el->vr, VR_FREE))
			return dummy_of_vr(c, el, nv, nl);
		return DIANA__EDIT_KEEP; /* codes, numbers */
	case DIANA__ACT_SHIFT:
		return shift_dates(c, el, nv, nl);
	case DIANA__ACT_UID:
		if (!vr_is(el->vr, "UI"))
			return DIANA__EDIT_REMOVE;
		return map_uids(c, el, nv, nl);
	case DIANA__ACT_REFS:
		return is_sq(el) ? DIANA__EDIT_KEEP : DIANA__EDIT_EMPTY;
	}
	return DIANA__EDIT_REMOVE;
}

/* code sequence item attributes: concept names, not identities */
static int is_code_attr(uint32_t tag)
{
	switch (tag) {
	case TAG(0x0008, 0x0100): /* Code Value */
	case TAG(0x0008, 0x0102): /* Coding Scheme Designator */
	case TAG(0x0008, 0x0103): /* Coding Scheme Version */
	case TAG(0x0008, 0x0104): /* Code Meaning */
	case TAG(0x0008, 0x0105): /* Mapping Resource */
	case TAG(0x0008, 0x010F): /* Context Identifier */
	case TAG(0x0008, 0x0119): /* Long Code Value */
	case TAG(0x0008, 0x0120): /* URN Code Value */
	case TAG(0x0008, 0x0122): /* Mapping Resource Name */
	case TAG(0x0040, 0xDB00): /* Template Identifier */
		return 1;
	default:
		return 0;
	}
}

/* an element the table does not list, inside a sequence being cleaned or dummied */
static int unlisted(ctx *c, const diana__edit_element *el, int mode, uint8_t **nv, size_t *nl)
{
	if (mode == MODE_NORMAL || is_sq(el))
		return DIANA__EDIT_KEEP;
	if (vr_is(el->vr, "UN"))
		return DIANA__EDIT_REMOVE; /* cannot be inspected */
	if (is_code_attr(el->tag))
		return mode == MODE_CLEAN ? DIANA__EDIT_KEEP : dummy_of_vr(c, el, nv, nl);
	if (vr_is(el->vr, "DA,DT,TM"))
		return dates_action(c, el, nv, nl);
	if (vr_is(el->vr, "PN") || vr_is(el->vr, VR_FREE))
		return dummy_of_vr(c, el, nv, nl);
	return DIANA__EDIT_KEEP; /* CS, numbers, UIDs of classes, binary */
}

/* `s` without leading and trailing spaces (and NULs): start and length */
static const char *trimmed(const char *s, size_t n, size_t *len)
{
	while (n && (*s == ' ' || *s == '\0')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\0'))
		n--;
	*len = n;
	return s;
}

/*
 * The row of Table E.3.10-1 kept for the block of `creator` (trimmed
 * already) in `group` and element byte `elem`, or NULL; with elem < 0, any
 * kept row of that creator in the group.
 */
static const diana__safe_private_row *safe_row(uint16_t group, const char *creator, size_t n, int elem)
{
	for (size_t i = 0; i < diana__safe_private_nrows; i++) {
		const diana__safe_private_row *r = &diana__safe_private_rows[i];
		if (r->group == group && (elem < 0 || r->element == elem) && strlen(r->creator) == n &&
		    !memcmp(creator, r->creator, n))
			return r;
	}
	return NULL;
}

/*
 * The value holds what the table says, numbers or a code string only (the
 * element's VR is the table's, or UN in implicit VR files): anything else
 * (text where a number should be, a length that is no multiple of the
 * binary size) is not kept.
 */
static int safe_value(const diana__edit_element *el, const diana__safe_private_row *r)
{
	static const struct { const char *vr; size_t size; } binary[] = {
		{ "FL", 4 }, { "FD", 8 }, { "SL", 4 }, { "SS", 2 }, { "UL", 4 }, { "US", 2 },
	};
	const char *allowed;

	if (strcmp(el->vr, r->vr) && strcmp(el->vr, "UN"))
		return 0;
	for (size_t i = 0; i < sizeof binary / sizeof binary[0]; i++)
		if (!strcmp(r->vr, binary[i].vr))
			return el->length % binary[i].size == 0;
	if (!strcmp(r->vr, "DS"))
		allowed = "0123456789+-.eE \\";
	else if (!strcmp(r->vr, "IS"))
		allowed = "0123456789+- \\";
	else if (!strcmp(r->vr, "CS"))
		allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ \\";
	else
		return 0;
	for (size_t i = 0; el->value && i < el->length; i++) {
		char ch = (char)el->value[i];
		if (ch == '\0' && i + 1 == el->length)
			break; /* padding */
		if (ch == '\0' || !strchr(allowed, ch))
			return 0;
	}
	return 1;
}

static int private_action(ctx *c, const diana__edit_element *el)
{
	uint16_t g = (uint16_t)(el->tag >> 16), e = (uint16_t)el->tag;
	const diana__safe_private_row *r;
	const char *pc;
	size_t n;

	if (!(c->opt & DIANA_DEID_RETAIN_SAFE_PRIVATE))
		return DIANA__EDIT_REMOVE;
	if (e >= 0x0010 && e <= 0x00FF) { /* a creator: kept when its block holds a safe row */
		pc = trimmed(el->value ? (const char *)el->value : "", el->value ? el->length : 0, &n);
		return safe_row(g, pc, n, -1) ? DIANA__EDIT_KEEP : DIANA__EDIT_REMOVE;
	}
	if (e < 0x1000 || !el->private_creator)
		return DIANA__EDIT_REMOVE;
	pc = trimmed(el->private_creator, strlen(el->private_creator), &n);
	r = safe_row(g, pc, n, e & 0xFF);
	return r && safe_value(el, r) ? DIANA__EDIT_KEEP : DIANA__EDIT_REMOVE;
}

int diana__deid_retains(uint32_t tag, const char *vr, const char *creator, uint32_t options)
{
	uint16_t g = (uint16_t)(tag >> 16), e = (uint16_t)tag;
	const diana__deid_row *row;
	size_t n;

	if (g == 0x0002) { /* as meta_action() */
		if (tag == TAG(0x0002, 0x0003))
			return (options & DIANA_DEID_RETAIN_UIDS) != 0;
		return !(e == 0x0012 || e == 0x0013 || e == 0x0016 || e == 0x0017 || e == 0x0018 ||
		         e == 0x0100 || e == 0x0102);
	}
	if (e == 0x0000)
		return 0;
	if (g & 1) { /* as private_action() */
		if (!(options & DIANA_DEID_RETAIN_SAFE_PRIVATE))
			return 0;
		if (!creator || (e >= 0x0010 && e <= 0x00FF))
			return 0; /* creator values identify nobody and are not checked here */
		creator = trimmed(creator, strlen(creator), &n);
		return e >= 0x1000 && safe_row(g, creator, n, e & 0xFF) != NULL;
	}
	if ((g & 0xFF00) == 0x6000) /* overlays: kept with Clean Graphics, but for bitmap and text */
		return (options & DIANA_DEID_CLEAN_GRAPHICS) && e != 0x3000 && !vr_is(vr, VR_FREE) &&
		       !vr_is(vr, "PN");
	if (!(row = diana__deid_row_of(tag)))
		return 1;
	switch (diana__deid_resolve(row, options)) { /* as apply() */
	case DIANA__ACT_KEEP:
		return 1;
	case DIANA__ACT_CLEAN:
		if (vr_is(vr, "DA,DT,TM"))
			return (options & DIANA_DEID_RETAIN_LONG_FULL_DATES) ||
			       (vr_is(vr, "TM") && (options & DIANA_DEID_RETAIN_LONG_MODIFIED_DATES));
		return !(vr_is(vr, "PN") || vr_is(vr, VR_FREE));
	case DIANA__ACT_SHIFT:
		return !vr_is(vr, "DA,DT");
	default:
		return 0;
	}
}

static int override_action(ctx *c, const diana__edit_element *el, const diana__override *ov,
                           uint8_t **nv, size_t *nl)
{
	switch (ov->action) {
	case DIANA_ACTION_KEEP:
		return DIANA__EDIT_KEEP;
	case DIANA_ACTION_REMOVE:
		return DIANA__EDIT_REMOVE;
	case DIANA_ACTION_EMPTY:
		return DIANA__EDIT_EMPTY;
	case DIANA_ACTION_REPLACE:
		if (!vr_is(el->vr, VR_TEXT))
			return diana__error_set(DIANA_EINVAL,
			                        "override of (%04X,%04X): only text values can be replaced (VR %s)",
			                        el->tag >> 16, el->tag & 0xFFFF, el->vr);
		for (const char *s = ov->value; *s; s++) {
			if ((unsigned char)*s >= 0x80 && strcmp(el->charset ? el->charset : "", "ISO_IR 192"))
				return diana__error_set(DIANA_EINVAL,
				                        "override of (%04X,%04X): the value is not ASCII and the "
				                        "character set is not ISO_IR 192",
				                        el->tag >> 16, el->tag & 0xFFFF);
		}
		return give_str(ov->value, nv, nl);
	}
	(void)c;
	return DIANA__EDIT_KEEP;
}

static int meta_action(ctx *c, const diana__edit_element *el, uint8_t **nv, size_t *nl)
{
	switch (el->tag) {
	case TAG(0x0002, 0x0003): { /* Media Storage SOP Instance UID: as (0008,0018) */
		const diana__override *ov = diana__profile_override(c->p, TAG(0x0008, 0x0018));
		if (ov && ov->action == DIANA_ACTION_KEEP)
			return DIANA__EDIT_KEEP;
		if (ov && ov->action == DIANA_ACTION_REPLACE)
			return give_str(ov->value, nv, nl);
		if (c->opt & DIANA_DEID_RETAIN_UIDS)
			return DIANA__EDIT_KEEP;
		return map_uids(c, el, nv, nl);
	}
	case TAG(0x0002, 0x0012): /* Implementation Class UID / Version Name: libdiana writes the file */
	case TAG(0x0002, 0x0013):
	case TAG(0x0002, 0x0016): /* AE titles of the source, sender and receiver */
	case TAG(0x0002, 0x0017):
	case TAG(0x0002, 0x0018):
	case TAG(0x0002, 0x0100): /* Private Information Creator UID and Private Information */
	case TAG(0x0002, 0x0102):
		return DIANA__EDIT_REMOVE;
	default:
		return DIANA__EDIT_KEEP;
	}
}

static int edit_cb(const diana__edit_element *el, uint8_t **nv, size_t *nl, void *user_data)
{
	ctx *c = user_data;
	uint32_t tag = el->tag;
	uint16_t g = (uint16_t)(tag >> 16), e = (uint16_t)tag;
	int mode, rc;
	const diana__override *ov;
	const diana__deid_row *row;

	if (el->depth < 0)
		return diana__error_set(DIANA_ERROR, "edit walk: negative depth");
	if ((size_t)el->depth + 2 > c->nmodes) {
		size_t n = (size_t)el->depth + 16;
		uint8_t *m = realloc(c->modes, n);
		if (!m)
			return diana__error_oom();
		memset(m + c->nmodes, 0, n - c->nmodes);
		c->modes = m;
		c->nmodes = n;
	}
	mode = c->modes[el->depth];
	c->inner = mode;

	if (el->is_meta)
		return meta_action(c, el, nv, nl);
	if (e == 0x0000) { /* group lengths: recomputed by the writer when needed */
		rc = DIANA__EDIT_REMOVE;
	} else if (el->depth == 0 && (tag == TAG(0x7FE0, 0x0010) || tag == TAG(0x7FE0, 0x0008) ||
	                              tag == TAG(0x7FE0, 0x0009))) {
		return DIANA__EDIT_KEEP; /* pixel data: never touched */
	} else if ((ov = diana__profile_override(c->p, tag))) {
		rc = override_action(c, el, ov, nv, nl);
	} else if (g & 1) {
		rc = private_action(c, el);
	} else if ((g & 0xFF00) == 0x6000) {
		/* overlay planes: removed whole, or kept blank with Clean Graphics */
		if (!(c->opt & DIANA_DEID_CLEAN_GRAPHICS))
			rc = DIANA__EDIT_REMOVE;
		else if (e == 0x3000)
			rc = give_zeros(el->length, nv, nl);
		else if (vr_is(el->vr, VR_FREE) || vr_is(el->vr, "PN"))
			rc = dummy_of_vr(c, el, nv, nl);
		else
			rc = DIANA__EDIT_KEEP;
	} else if ((row = diana__deid_row_of(tag))) {
		rc = apply(c, el, diana__deid_resolve(row, c->opt), row, mode, nv, nl);
	} else {
		rc = unlisted(c, el, mode, nv, nl);
	}
	if (rc == DIANA__EDIT_KEEP && is_sq(el))
		c->modes[el->depth + 1] = (uint8_t)c->inner;
	return rc;
}

/* ---- originals and pseudonyms of the whole object ------------------------------ */

static int get_opt(const diana_dataset *ds, const char *key, char **out)
{
	int rc = diana_dataset_get(ds, key, out);
	if (rc == DIANA_ENOTFOUND) {
		*out = NULL;
		return 0;
	}
	if (rc == DIANA_EUNSUPPORTED) { /* not text where text is expected */
		*out = NULL;
		return diana__error_set(DIANA_EDICOM, "%s: unexpected VR", key);
	}
	return rc;
}

int diana__deid_patient_key(const char *pid, const char *name, const char *birth, const char *study, char **out,
                            size_t *len)
{
	diana__buf b = DIANA__BUF_INIT;

	/* the patient key: Patient ID; without one, name and birth date; else the study */
	if (pid && *pid)
		diana__buf_printf(&b, "id:%s", pid);
	else if (name && *name)
		diana__buf_printf(&b, "name:%s\\%s", name, birth ? birth : "");
	else
		diana__buf_printf(&b, "study:%s", study ? study : "");
	if (b.oom) {
		diana__buf_dispose(&b);
		return DIANA_ENOMEM;
	}
	*out = diana__buf_detach(&b, len);
	return *out ? 0 : DIANA_ENOMEM;
}

static int patient_context(ctx *c, diana_deid_result *r)
{
	const char *pid = r->v[DIANA__R_N + DIANA__R_PATIENT_ID];
	const char *name = r->v[DIANA__R_N + DIANA__R_PATIENT_NAME];
	const char *birth = r->v[DIANA__R_N + DIANA__R_PATIENT_BIRTH_DATE];
	const char *study = r->v[DIANA__R_N + DIANA__R_STUDY_UID];
	size_t len;
	int rc;

	if ((rc = diana__deid_patient_key(pid, name, birth, study, &c->pkey, &len)) < 0)
		return rc;
	if (pid && *pid)
		rc = diana__mint_code(c->p->mint, "id:", pid, strlen(pid), c->pid);
	else
		rc = diana__mint_code(c->p->mint, "patient:", c->pkey, len, c->pid);
	if (rc < 0)
		return rc;
	c->orig_name = name;
	if ((rc = diana__mint_name(c->p->mint, c->pkey, len, name, c->name)) < 0)
		return rc;
	return diana__mint_shift(c->p->mint, c->pkey, len, c->p->shift_max_days, &c->shift);
}

static void json_str(diana__buf *b, const char *s)
{
	diana__buf_putc(b, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			diana__buf_putc(b, '\\');
		diana__buf_putc(b, *s);
	}
	diana__buf_putc(b, '"');
}

static int printable_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7F)
			return 0;
	return 1;
}

static void code_item(diana__buf *b, const char *value, const char *scheme, const char *meaning)
{
	diana__buf_puts(b, "{\"00080100\":{\"vr\":\"SH\",\"Value\":[");
	json_str(b, value);
	diana__buf_puts(b, "]},\"00080102\":{\"vr\":\"SH\",\"Value\":[");
	json_str(b, scheme);
	diana__buf_puts(b, "]},\"00080104\":{\"vr\":\"LO\",\"Value\":[");
	json_str(b, meaning);
	diana__buf_puts(b, "]}}");
}

/*
 * Patient Identity Removed, De-identification Method (Code Sequence) and
 * Longitudinal Temporal Information Modified. Methods and codes of an
 * earlier de-identification are kept (plain ASCII ones), ours appended.
 */
static int add_method_json(ctx *c, diana_dataset *ds);

static int add_method(ctx *c, diana_dataset *ds)
{
	diana_profile *p = (diana_profile *)c->p; /* only its method cache is written, under its lock */
	diana_dataset *frag;
	int slot = p->nov ? 1 : 0, rc = 0;

	/* an input with a method or codes of its own keeps them (merged below) */
	if (diana__dataset_has(ds, 0x00120063) || diana__dataset_has(ds, 0x00120064))
		return add_method_json(c, ds);
	/* otherwise the elements depend on the profile alone: parsed once */
	frag = __atomic_load_n(&p->method_ds[slot], __ATOMIC_ACQUIRE);
	if (!frag) {
		pthread_mutex_lock(&p->method_lock);
		frag = p->method_ds[slot];
		if (!frag && (rc = diana_dataset_from_json(&frag, "{}", 2)) == 0) {
			if ((rc = add_method_json(c, frag)) < 0) {
				diana_dataset_free(frag);
				frag = NULL;
			} else {
				__atomic_store_n(&p->method_ds[slot], frag, __ATOMIC_RELEASE);
			}
		}
		pthread_mutex_unlock(&p->method_lock);
		if (rc < 0)
			return rc;
	}
	return diana__dataset_put_from(ds, frag);
}

static int add_method_json(ctx *c, diana_dataset *ds)
{
	diana__buf b = DIANA__BUF_INIT;
	char *prior = NULL, key[96];
	int rc, n = 0, seen[DIANA__NOPTIONS + 1] = { 0 };
	const char *ltim;

	diana__buf_puts(&b, "{\"00120062\":{\"vr\":\"CS\",\"Value\":[\"YES\"]},");
	/* (0012,0063) */
	diana__buf_puts(&b, "\"00120063\":{\"vr\":\"LO\",\"Value\":[");
	if ((rc = get_opt(ds, "00120063", &prior)) < 0) /* De-identification Method */
		goto out;
	if (prior && printable_ascii(prior)) {
		char *save = NULL;
		for (char *t = strtok_r(prior, "\\", &save); t; t = strtok_r(NULL, "\\", &save)) {
			if (!*t || strstr(t, "libdiana") || !strcmp(t, BASIC_METHOD))
				continue;
			int ours = 0;
			for (int i = 0; i < DIANA__NOPTIONS; i++)
				ours |= !strcmp(t, method_codes[i].meaning);
			if (ours)
				continue;
			if (n++)
				diana__buf_putc(&b, ',');
			json_str(&b, t);
		}
	}
	free(prior);
	prior = NULL;
	if (n++)
		diana__buf_putc(&b, ',');
	json_str(&b, BASIC_METHOD);
	for (int i = 0; i < DIANA__NOPTIONS; i++) {
		if (c->opt & (1u << i)) {
			diana__buf_putc(&b, ',');
			json_str(&b, method_codes[i].meaning);
		}
	}
	if (c->p->nov)
		diana__buf_puts(&b, ",\"libdiana per-attribute overrides\"");
	diana__buf_puts(&b, ",\"libdiana " DIANA_VERSION_STRING "\"]},");

	/* (0012,0064): earlier codes, then ours */
	diana__buf_puts(&b, "\"00120064\":{\"vr\":\"SQ\",\"Value\":[");
	n = 0;
	for (int i = 0; i < 32; i++) {
		char *v = NULL, *s = NULL, *m = NULL;
		snprintf(key, sizeof key, "00120064[%d].00080100", i);
		if ((rc = get_opt(ds, key, &v)) < 0 || !v)
			break;
		snprintf(key, sizeof key, "00120064[%d].00080102", i);
		rc = get_opt(ds, key, &s);
		snprintf(key, sizeof key, "00120064[%d].00080104", i);
		if (rc == 0)
			rc = get_opt(ds, key, &m);
		if (rc == 0 && s && m && printable_ascii(v) && printable_ascii(s) && printable_ascii(m)) {
			int drop = 0;
			if (!strcmp(s, "DCM")) {
				if (!strcmp(v, basic_code.value))
					seen[DIANA__NOPTIONS] = 1;
				for (int k = 0; k < DIANA__NOPTIONS; k++) {
					if (strcmp(v, method_codes[k].value))
						continue;
					if (c->opt & (1u << k))
						seen[k] = 1;
					/* an earlier Retain option no longer holds unless this run
					 * retains the same: what it kept may be gone now */
					else if (IS_RETAIN_OPTION(k))
						drop = 1;
				}
			}
			if (drop)
				goto next;
			if (n++)
				diana__buf_putc(&b, ',');
			code_item(&b, v, s, m);
		}
	next:
		free(v);
		free(s);
		free(m);
		if (rc < 0)
			break;
	}
	if (rc < 0)
		goto out;
	if (!seen[DIANA__NOPTIONS]) {
		if (n++)
			diana__buf_putc(&b, ',');
		code_item(&b, basic_code.value, "DCM", basic_code.meaning);
	}
	for (int i = 0; i < DIANA__NOPTIONS; i++) {
		if ((c->opt & (1u << i)) && !seen[i]) {
			if (n++)
				diana__buf_putc(&b, ',');
			code_item(&b, method_codes[i].value, "DCM", method_codes[i].meaning);
		}
	}
	diana__buf_puts(&b, "]},");

	/* (0028,0303) Longitudinal Temporal Information Modified */
	if (c->opt & DIANA_DEID_RETAIN_LONG_FULL_DATES)
		ltim = "UNMODIFIED";
	else if (c->opt & DIANA_DEID_RETAIN_LONG_MODIFIED_DATES)
		ltim = "MODIFIED";
	else
		ltim = "REMOVED";
	diana__buf_printf(&b, "\"00280303\":{\"vr\":\"CS\",\"Value\":[\"%s\"]}}", ltim);
	if (b.oom) {
		rc = DIANA_ENOMEM;
		goto out;
	}
	rc = diana__dataset_put_json(ds, b.data);
out:
	free(prior);
	diana__buf_dispose(&b);
	return rc;
}

/* the result fields, as tags (no keyword lookups on the hot path) */
static const char *const result_keys[DIANA__R_N] = {
	"00100020", "00100010", "00100030", "00080050", "0020000D", "0020000E", "00080018", "00080020",
};

static int key_row(const diana_profile *p, const diana_deid_result *r)
{
	/* diana__key_columns order: Original{Name, ID, BirthDate, Accession, StudyUID, StudyDate}, Pseudo{...} */
	static const int cols[6] = { DIANA__R_PATIENT_NAME, DIANA__R_PATIENT_ID, DIANA__R_PATIENT_BIRTH_DATE,
	                             DIANA__R_ACCESSION, DIANA__R_STUDY_UID, DIANA__R_STUDY_DATE };
	const char *fields[DIANA__KEY_NFIELDS];
	int rc;

	for (int i = 0; i < 6; i++) {
		fields[i] = r->v[DIANA__R_N + cols[i]];
		fields[6 + i] = r->v[cols[i]];
	}
	rc = diana__keyfile_append(p->key, fields);
	return rc < 0 ? rc : 0;
}

DIANA_API int diana_anonymize_dataset(diana_profile *p, diana_dataset *ds, diana_deid_result **result)
{
	diana_deid_result *r;
	ctx c;
	int rc;
	char *probe = NULL;

	if (result)
		*result = NULL;
	if (!p || !ds)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	r = diana__calloc(1, sizeof *r);
	if (!r)
		return DIANA_ENOMEM;
	memset(&c, 0, sizeof c);
	c.p = p;
	c.opt = p->options;

	/* the originals (also the key row) */
	for (int i = 0; i < DIANA__R_N; i++)
		if ((rc = get_opt(ds, result_keys[i], &r->v[DIANA__R_N + i])) < 0)
			goto out;
	if ((rc = patient_context(&c, r)) < 0)
		goto out;

	rc = diana__dataset_edit(ds, edit_cb, &c);
	if (rc < 0)
		goto out;
	/* a Patient ID for every output (the pseudonym the key row names) */
	if ((rc = get_opt(ds, "00100020", &probe)) < 0)
		goto out;
	if (!probe && !diana__profile_override(p, T_PATIENT_ID))
		rc = diana__dataset_put(ds, T_PATIENT_ID, "LO", (const uint8_t *)c.pid, strlen(c.pid));
	free(probe);
	if (rc < 0)
		goto out;
	if ((rc = add_method(&c, ds)) < 0)
		goto out;

	/* the new values, as written */
	for (int i = 0; i < DIANA__R_N; i++)
		if ((rc = get_opt(ds, result_keys[i], &r->v[i])) < 0)
			goto out;
	/* one row per study: an object without a Study Instance UID has none */
	if (p->key && r->v[DIANA__R_N + DIANA__R_STUDY_UID] && *r->v[DIANA__R_N + DIANA__R_STUDY_UID] &&
	    (rc = key_row(p, r)) < 0)
		goto out;
	rc = 0;
out:
	free(c.pkey);
	free(c.modes);
	OPENSSL_cleanse(&c, sizeof c);
	if (rc < 0 || !result)
		diana_deid_result_free(r);
	else
		*result = r;
	return rc;
}

DIANA_API int diana_anonymize_file(diana_profile *p, const char *in_path, const char *out_path,
                                   diana_deid_result **result)
{
	diana_dataset *ds = NULL;
	diana_deid_result *r = NULL;
	int rc;

	if (result)
		*result = NULL;
	if (!p || !in_path || !out_path)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	/* the pixel data stays in the input file: copied, never loaded */
	if ((rc = diana__dataset_open_deferred(&ds, in_path)) < 0)
		return rc;
	rc = diana_anonymize_dataset(p, ds, result ? &r : NULL);
	if (rc == 0)
		rc = diana_dataset_save(ds, out_path);
	diana_dataset_free(ds);
	if (rc < 0) {
		diana_deid_result_free(r);
		return rc;
	}
	if (result)
		*result = r;
	return 0;
}

DIANA_API int diana_anonymize_memory(diana_profile *p, const uint8_t *data, size_t len, uint8_t **out,
                                     size_t *out_len, diana_deid_result **result)
{
	diana_dataset *ds = NULL;
	diana_deid_result *r = NULL;
	int rc;

	if (result)
		*result = NULL;
	if (out)
		*out = NULL;
	if (out_len)
		*out_len = 0;
	if (!p || !data || !out || !out_len)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	if ((rc = diana_dataset_open_memory(&ds, data, len, NULL)) < 0)
		return rc;
	rc = diana_anonymize_dataset(p, ds, result ? &r : NULL);
	if (rc == 0)
		rc = diana_dataset_save_memory(ds, out, out_len);
	diana_dataset_free(ds);
	if (rc < 0) {
		diana_deid_result_free(r);
		return rc;
	}
	if (result)
		*result = r;
	return 0;
}

/* ---- into a folder tree ------------------------------------------------------------ */

#define MEDIA_STORAGE_DIRECTORY "1.2.840.10008.1.3.10"

/* a path component from a pseudonym: [A-Za-z0-9._-] only, never "", "." or ".." */
static void append_component(diana__buf *b, const char *v)
{
	size_t start = b->len;
	int dots = 1;

	diana__buf_putc(b, '/');
	for (; v && *v; v++) {
		char ch = *v;
		if (!(isalnum((unsigned char)ch) || ch == '.' || ch == '_' || ch == '-'))
			ch = '_';
		if (ch != '.')
			dots = 0;
		diana__buf_putc(b, ch);
	}
	if (dots && !b->oom) {
		b->len = start + 1;
		b->data[b->len] = 0;
		diana__buf_puts(b, "unknown");
	}
}

/* the folder of an output: usually there already (one syscall), else its
 * missing parents first */
static int mkdirs(char *path)
{
	char *slash;
	int rc;

	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	if (errno != ENOENT || !(slash = strrchr(path, '/')) || slash == path)
		return diana__error_errno(errno, "cannot create an output folder");
	*slash = 0;
	rc = mkdirs(path);
	*slash = '/';
	if (rc < 0)
		return rc;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return diana__error_errno(errno, "cannot create an output folder");
	return 0;
}

DIANA_API int diana_anonymize_into(diana_profile *p, const char *in_path, const char *out_dir,
                                   uint32_t flags, char **out_path, diana_deid_result **result)
{
	diana_dataset *ds = NULL;
	diana_deid_result *r = NULL;
	diana__buf b = DIANA__BUF_INIT;
	char *sop_class = NULL, *path = NULL, nouid[48];
	const char *sop;
	size_t dir_len, len;
	int rc;

	if (out_path)
		*out_path = NULL;
	if (result)
		*result = NULL;
	if (!p || !in_path || !out_dir || !*out_dir)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	if (flags & ~(uint32_t)(DIANA_ANON_NO_SYNC | DIANA_ANON_NO_WRITEBACK))
		return diana__error_set(DIANA_EINVAL, "unknown flags 0x%x", (unsigned)flags);
	if ((rc = diana__dataset_open_deferred(&ds, in_path)) < 0) /* pixel data copied, never loaded */
		return rc;
	if ((rc = get_opt(ds, "00020002", &sop_class)) < 0)
		goto out;
	if (sop_class && !strcmp(sop_class, MEDIA_STORAGE_DIRECTORY)) {
		rc = 1;
		goto out;
	}
	if ((rc = diana_anonymize_dataset(p, ds, &r)) < 0)
		goto out;
	diana__buf_puts(&b, out_dir);
	while (b.len > 1 && b.data[b.len - 1] == '/')
		b.data[--b.len] = 0;
	append_component(&b, diana_deid_result_get(r, "PatientID"));
	append_component(&b, diana_deid_result_get(r, "StudyInstanceUID"));
	append_component(&b, diana_deid_result_get(r, "SeriesInstanceUID"));
	dir_len = b.len;
	sop = diana_deid_result_get(r, "SOPInstanceUID");
	if (!sop || !*sop) {
		/* not a stored object (no SOP Instance UID): named by its input,
		 * keyed, so that two such inputs never overwrite each other */
		char hex[65], *abs = realpath(in_path, NULL);
		rc = diana__profile_hash_hex(p, "nouid:", abs ? abs : in_path, hex);
		free(abs);
		if (rc < 0)
			goto out;
		snprintf(nouid, sizeof nouid, "nouid-%.32s", hex);
		sop = nouid;
	}
	append_component(&b, sop);
	diana__buf_puts(&b, ".dcm");
	if (b.oom) {
		rc = DIANA_ENOMEM;
		goto out;
	}
	path = diana__buf_detach(&b, &len);
	path[dir_len] = 0;
	rc = mkdirs(path);
	path[dir_len] = '/';
	if (rc < 0)
		goto out;
	if ((rc = diana__dataset_save_atomic(ds, path,
	                                     !(flags & DIANA_ANON_NO_SYNC)            ? DIANA__SAVE_FSYNC
	                                     : (flags & DIANA_ANON_NO_WRITEBACK) ? DIANA__SAVE_NONE
	                                                                           : DIANA__SAVE_WRITEBACK)) < 0)
		goto out;
	if (out_path) {
		*out_path = path;
		path = NULL;
	}
	if (result) {
		*result = r;
		r = NULL;
	}
	rc = 0;
out:
	diana__buf_dispose(&b);
	free(path);
	free(sop_class);
	diana_deid_result_free(r);
	diana_dataset_free(ds);
	return rc;
}

DIANA_API int diana_anonymize_sync(const char *path)
{
	int fd, rc = 0;

	if (!path)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return diana__error_errno(errno, "cannot open the output folder");
	if (syncfs(fd) < 0)
		rc = diana__error_errno(errno, "cannot flush the output file system");
	close(fd);
	return rc;
}
