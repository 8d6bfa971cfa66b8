/*
 * libdiana - Radiation Dose SR -> flat JSON.
 *
 * The dataset is exported as DICOM JSON (lib/dicom, character sets already
 * converted to UTF-8) and the content tree is walked with cJSON. Concepts
 * are recognised by coded concept names only (never by meanings); the
 * codes come from PS3.16 (checked against DCMTK's dcmsr/codes/dcm.h, which
 * is generated from the standard). SNOMED concepts are accepted in both
 * their SRT (legacy) and SCT forms.
 *
 * PHI rule: error messages name codes, tags and counts, never values.
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "dose_priv.h"

/* ---------------------------------------------------------------------- */
/* codes                                                                   */
/* ---------------------------------------------------------------------- */

typedef struct code {
	const char *value;
	const char *scheme;
	const char *alt_value; /* SCT form of an SRT code, or NULL */
	const char *alt_scheme;
} code;

#define DCM(v) { v, "DCM", NULL, NULL }
#define SNOMED(srt, sct) { srt, "SRT", sct, "SCT" }
#define LN(v) { v, "LN", NULL, NULL }

/* document roots and containers */
static const code C_XRAY_DOSE_REPORT = DCM("113701");
static const code C_RADIOPHARM_DOSE_REPORT = DCM("113500");
static const code C_CT_ACCUMULATED = DCM("113811");
static const code C_CT_ACQUISITION = DCM("113819");
static const code C_CT_SOURCE_PARAMS = DCM("113831");
static const code C_XRAY_ACCUMULATED = DCM("113702");
static const code C_XRAY_EVENT = DCM("113706");
static const code C_RADIOPHARM_ADMIN = DCM("113502");
static const code C_PROCEDURE_REPORTED = DCM("121058");
static const code C_START_OF_IRRADIATION = DCM("113809");
/* values of Procedure reported */
static const code V_CT_PROCEDURE = SNOMED("P5-08000", "77477000");
static const code V_PROJECTION_XRAY = DCM("113704");
static const code V_MAMMOGRAPHY = SNOMED("P5-40010", "71651007");
static const code V_FLUOROSCOPY = SNOMED("P5-06000", "44491008");
/* patient characteristics in the content */
static const code C_SUBJECT_AGE = DCM("121033");
static const code C_SUBJECT_SEX = DCM("121032");
static const code C_PATIENT_HEIGHT = LN("8302-2");
static const code C_PATIENT_WEIGHT = LN("29463-7");

enum kind { K_NUM, K_CODE, K_TEXT, K_UID, K_DT, K_CODE_OR_TEXT };

typedef struct field {
	const char *key;
	code c;
	enum kind kind;
} field;

/* TID 10013 CT Irradiation Event Data (flat fields; x-ray source ones are
 * those of the first CT X-Ray Source Parameters container) */
static const field CT_EVENT[] = {
	{ "acquisition_type", DCM("113820"), K_CODE },
	{ "acquisition_protocol", DCM("125203"), K_TEXT },
	{ "target_region", DCM("123014"), K_CODE },
	{ "ctdivol", DCM("113830"), K_NUM },
	{ "dlp", DCM("113838"), K_NUM },
	{ "phantom_type", DCM("113835"), K_CODE },
	{ "ssde", DCM("113930"), K_NUM },
	{ "scanning_length", DCM("113825"), K_NUM },
	{ "exposure_time", DCM("113824"), K_NUM },
	{ "pitch_factor", DCM("113828"), K_NUM },
	{ "nominal_single_collimation_width", DCM("113826"), K_NUM },
	{ "nominal_total_collimation_width", DCM("113827"), K_NUM },
	{ "number_of_xray_sources", DCM("113823"), K_NUM },
	{ "xray_modulation_type", DCM("113842"), K_TEXT },
	{ "kvp", DCM("113733"), K_NUM },
	{ "tube_current", DCM("113734"), K_NUM },
	{ "maximum_tube_current", DCM("113833"), K_NUM },
	{ "exposure_time_per_rotation", DCM("113834"), K_NUM },
};

static const field CT_SOURCE[] = {
	{ "identification", DCM("113832"), K_TEXT },
	{ "kvp", DCM("113733"), K_NUM },
	{ "tube_current", DCM("113734"), K_NUM },
	{ "maximum_tube_current", DCM("113833"), K_NUM },
	{ "exposure_time_per_rotation", DCM("113834"), K_NUM },
};

/* TID 10003 Irradiation Event X-Ray Data and its included templates
 * (10003A detector, 10003B source, 10003C mechanical, TID 10004
 * mammography) */
static const field XRAY_EVENT[] = {
	{ "acquisition_plane", DCM("113764"), K_CODE },
	{ "acquisition_protocol", DCM("125203"), K_TEXT },
	{ "target_region", DCM("123014"), K_CODE },
	{ "laterality", SNOMED("G-C171", "272741003"), K_CODE },
	{ "image_view", DCM("111031"), K_CODE },
	{ "dose_area_product", DCM("122130"), K_NUM },
	{ "dose_rp", DCM("113738"), K_NUM },
	{ "reference_point_definition", DCM("113780"), K_CODE_OR_TEXT },
	{ "average_glandular_dose", DCM("111631"), K_NUM },
	{ "entrance_exposure_at_rp", DCM("111636"), K_NUM },
	{ "compression_thickness", DCM("111633"), K_NUM },
	{ "half_value_layer", DCM("111634"), K_NUM },
	{ "anode_target_material", DCM("111632"), K_CODE },
	{ "fluoro_mode", DCM("113732"), K_CODE },
	{ "pulse_rate", DCM("113791"), K_NUM },
	{ "number_of_pulses", DCM("113768"), K_NUM },
	{ "pulse_width", DCM("113793"), K_NUM },
	{ "irradiation_duration", DCM("113742"), K_NUM },
	{ "kvp", DCM("113733"), K_NUM },
	{ "tube_current", DCM("113734"), K_NUM },
	{ "average_tube_current", DCM("113767"), K_NUM },
	{ "exposure_time", DCM("113824"), K_NUM },
	{ "exposure", DCM("113736"), K_NUM },
	{ "focal_spot_size", DCM("113766"), K_NUM },
	{ "positioner_primary_angle", DCM("112011"), K_NUM },
	{ "positioner_secondary_angle", DCM("112012"), K_NUM },
	{ "column_angulation", DCM("113770"), K_NUM },
	{ "distance_source_to_detector", DCM("113750"), K_NUM },
	{ "distance_source_to_isocenter", DCM("113748"), K_NUM },
};
/* Exposure Time before it was retired for 113824 (older projection reports) */
static const code C_EXPOSURE_TIME_RETIRED = DCM("113735");

/* TID 10022 Radiopharmaceutical Administration Event Data */
static const field RP_EVENT[] = {
	{ "radiopharmaceutical_agent", SNOMED("F-61FDB", "349358000"), K_CODE },
	{ "radionuclide", SNOMED("C-10072", "89457008"), K_CODE },
	{ "administered_activity", DCM("113507"), K_NUM },
	{ "route_of_administration", SNOMED("G-C340", "410675002"), K_CODE },
};

/* TID 10012 CT Accumulated Dose Data */
static const field CT_TOTALS[] = {
	{ "total_number_of_irradiation_events", DCM("113812"), K_NUM },
	{ "ct_dlp_total", DCM("113813"), K_NUM },
};

/* TID 10002 Accumulated X-Ray Dose Data (+ TID 10004/10005 mammography) */
static const field XRAY_TOTALS[] = {
	{ "acquisition_plane", DCM("113764"), K_CODE },
	{ "dose_area_product_total", DCM("113722"), K_NUM },
	{ "dose_rp_total", DCM("113725"), K_NUM },
	{ "fluoro_dose_area_product_total", DCM("113726"), K_NUM },
	{ "acquisition_dose_area_product_total", DCM("113727"), K_NUM },
	{ "fluoro_dose_rp_total", DCM("113728"), K_NUM },
	{ "acquisition_dose_rp_total", DCM("113729"), K_NUM },
	{ "total_fluoro_time", DCM("113730"), K_NUM },
	{ "total_number_of_radiographic_frames", DCM("113731"), K_NUM },
	{ "total_acquisition_time", DCM("113855"), K_NUM },
	{ "reference_point_definition", DCM("113780"), K_CODE_OR_TEXT },
	{ "accumulated_average_glandular_dose", DCM("111637"), K_NUM },
};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------- */
/* DICOM JSON access                                                       */
/* ---------------------------------------------------------------------- */

static const cJSON *values(const cJSON *obj, const char *tag)
{
	const cJSON *el = cJSON_GetObjectItemCaseSensitive(obj, tag);
	const cJSON *v = el ? cJSON_GetObjectItemCaseSensitive(el, "Value") : NULL;
	return cJSON_IsArray(v) ? v : NULL;
}

static const cJSON *first_value(const cJSON *obj, const char *tag)
{
	const cJSON *v = values(obj, tag);
	return v ? v->child : NULL;
}

static const char *str_of(const cJSON *obj, const char *tag)
{
	const cJSON *v = first_value(obj, tag);
	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* first item of a sequence */
static const cJSON *item_of(const cJSON *obj, const char *tag)
{
	const cJSON *v = first_value(obj, tag);
	return cJSON_IsObject(v) ? v : NULL;
}

/* DS/IS/FD as number: JSON numbers, or (lenient reads) a decimal string */
static int num_of(const cJSON *v, double *out)
{
	if (cJSON_IsNumber(v)) {
		*out = v->valuedouble;
		return 1;
	}
	if (cJSON_IsString(v) && v->valuestring[0]) {
		char *end;
		const char *s = v->valuestring;
		while (*s == ' ')
			s++;
		*out = strtod(s, &end);
		while (*end == ' ')
			end++;
		return end != s && *end == '\0';
	}
	return 0;
}

static const char *code_value(const cJSON *c)
{
	const char *v = str_of(c, "00080100");
	if (!v)
		v = str_of(c, "00080119"); /* Long Code Value */
	if (!v)
		v = str_of(c, "00080120"); /* URN Code Value */
	return v;
}

static int code_is(const cJSON *c, const code *want)
{
	const char *v, *s;
	if (!c)
		return 0;
	v = code_value(c);
	s = str_of(c, "00080102");
	if (!v || !s)
		return 0;
	if (!strcmp(v, want->value) && !strcmp(s, want->scheme))
		return 1;
	if (want->alt_value && !strcmp(v, want->alt_value) && !strcmp(s, want->alt_scheme))
		return 1;
	return 0;
}

static const cJSON *concept_of(const cJSON *item)
{
	return item_of(item, "0040A043");
}

static int concept_is(const cJSON *item, const code *want)
{
	return code_is(concept_of(item), want);
}

static const char *vtype_of(const cJSON *item)
{
	return str_of(item, "0040A040");
}

static const cJSON *children_of(const cJSON *item)
{
	return values(item, "0040A730");
}

/* content tree check: every item has a value type and (but for the root
 * and by-reference items) a concept name; depth bounded by the reader */
static int check_tree(const cJSON *items, int depth, int *count)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, items)
	{
		const cJSON *kids;
		int rc;
		if (!cJSON_IsObject(it))
			return diana__error_set(DIANA_EDICOM, "content item at depth %d is not an item", depth);
		if (cJSON_GetObjectItemCaseSensitive(it, "0040DB73"))
			continue; /* by-reference relationship */
		if (!vtype_of(it))
			return diana__error_set(DIANA_EDICOM,
			                        "content item at depth %d has no Value Type (0040,A040)", depth);
		if (!concept_of(it) || !code_value(concept_of(it)))
			return diana__error_set(DIANA_EDICOM,
			                        "content item at depth %d has no Concept Name Code Sequence (0040,A043)",
			                        depth);
		(*count)++;
		kids = children_of(it);
		if (kids && (rc = check_tree(kids, depth + 1, count)) < 0)
			return rc;
	}
	return 0;
}

/* depth-first search of a concept below `items` (not descending into
 * containers whose concept is `stop`, when given) */
static const cJSON *find(const cJSON *items, const code *want, const code *stop)
{
	const cJSON *it;
	if (!items)
		return NULL;
	cJSON_ArrayForEach(it, items)
	{
		const cJSON *kids, *hit;
		if (concept_is(it, want))
			return it;
		if (stop && concept_is(it, stop))
			continue;
		kids = children_of(it);
		if (kids && (hit = find(kids, want, stop)) != NULL)
			return hit;
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* JSON output helpers                                                     */
/* ---------------------------------------------------------------------- */

typedef struct outstate {
	int oom;
} outstate;

static cJSON *add(outstate *o, cJSON *obj, const char *key, cJSON *v)
{
	if (!v) {
		o->oom = 1;
		return NULL;
	}
	if (!cJSON_AddItemToObject(obj, key, v)) {
		cJSON_Delete(v);
		o->oom = 1;
		return NULL;
	}
	return v;
}

static void add_str(outstate *o, cJSON *obj, const char *key, const char *s)
{
	add(o, obj, key, s ? cJSON_CreateString(s) : cJSON_CreateNull());
}

static cJSON *code_json(const cJSON *c)
{
	cJSON *j;
	const char *v = c ? code_value(c) : NULL, *s, *m;
	if (!v)
		return cJSON_CreateNull();
	s = str_of(c, "00080102");
	m = str_of(c, "00080104");
	j = cJSON_CreateObject();
	if (!j)
		return NULL;
	if (!cJSON_AddStringToObject(j, "code", v) ||
	    !(s ? cJSON_AddStringToObject(j, "scheme", s) : cJSON_AddNullToObject(j, "scheme")) ||
	    !(m ? cJSON_AddStringToObject(j, "meaning", m) : cJSON_AddNullToObject(j, "meaning"))) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

static cJSON *measure_json(double value, const char *unit)
{
	cJSON *j = cJSON_CreateObject();
	if (!j)
		return NULL;
	if (!cJSON_AddNumberToObject(j, "value", value) ||
	    !(unit ? cJSON_AddStringToObject(j, "unit", unit) : cJSON_AddNullToObject(j, "unit"))) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

/* NUM content item -> {"value", "unit"}; null when it carries no value */
static cJSON *num_json(const cJSON *item)
{
	const cJSON *mv = item ? item_of(item, "0040A300") : NULL;
	const cJSON *units;
	double d;
	if (!mv || !num_of(first_value(mv, "0040A30A"), &d))
		return cJSON_CreateNull();
	units = item_of(mv, "004008EA");
	return measure_json(d, units ? code_value(units) : NULL);
}

/* DICOM DT (or DA + TM) -> ISO 8601; returns 0 when unparsable */
typedef struct dt {
	int y, mo, d, h, mi, s, usec;
	int prec;    /* 1 year .. 6 seconds */
	int has_tz;
	int tz_min;  /* offset east of UTC */
	int usec_digits;
} dt;

static int digits(const char *s, int n, int *v)
{
	int i, r = 0;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return 0;
		r = r * 10 + (s[i] - '0');
	}
	*v = r;
	return 1;
}

static int parse_tz(const char *s, int *minutes)
{
	int hh, mm;
	if ((s[0] != '+' && s[0] != '-') || !digits(s + 1, 2, &hh) || !digits(s + 3, 2, &mm) || s[5])
		return 0;
	*minutes = (s[0] == '-' ? -1 : 1) * (hh * 60 + mm);
	return 1;
}

static int parse_dt(const char *s, dt *t)
{
	const char *p = s;
	size_t n;
	memset(t, 0, sizeof(*t));
	t->mo = t->d = 1;
	if (!s)
		return 0;
	n = strcspn(s, "+-");
	if (s[n]) {
		if (!parse_tz(s + n, &t->tz_min))
			return 0;
		t->has_tz = 1;
	}
	if (n < 4 || !digits(p, 4, &t->y))
		return 0;
	t->prec = 1;
	if (n >= 6 && digits(p + 4, 2, &t->mo))
		t->prec = 2;
	if (n >= 8 && digits(p + 6, 2, &t->d))
		t->prec = 3;
	if (n >= 10 && digits(p + 8, 2, &t->h))
		t->prec = 4;
	if (n >= 12 && digits(p + 10, 2, &t->mi))
		t->prec = 5;
	if (n >= 14 && digits(p + 12, 2, &t->s))
		t->prec = 6;
	if (n > 15 && p[14] == '.') {
		int i, v = 0;
		for (i = 15; i < (int)n && i < 21; i++) {
			if (!isdigit((unsigned char)p[i]))
				return 0;
			v = v * 10 + (p[i] - '0');
			t->usec_digits++;
		}
		for (i = t->usec_digits; i < 6; i++)
			v *= 10;
		t->usec = v;
	}
	/* what was read must be all there is (trailing spaces stripped) */
	{
		size_t used = t->prec == 6 ? 14 : (size_t)(t->prec == 1 ? 4 : 2 + 2 * t->prec);
		if (t->usec_digits)
			used = 15 + (size_t)t->usec_digits;
		if (used != n)
			return 0;
	}
	if (t->mo < 1 || t->mo > 12 || t->d < 1 || t->d > 31 || t->h > 23 || t->mi > 59 || t->s > 60)
		return 0;
	return 1;
}

/* DA "YYYYMMDD" + TM "HHMMSS.FFFFFF" (any precision) -> DT text */
static int da_tm_to_dt(const char *da, const char *tm, char *buf, size_t size)
{
	size_t i, n;
	if (!da || strlen(da) != 8)
		return 0;
	n = 0;
	memcpy(buf, da, 8);
	n = 8;
	if (tm) {
		for (i = 0; tm[i] && tm[i] != ':' && n + 1 < size; i++)
			buf[n++] = tm[i];
		if (tm[i] == ':') { /* ACR-NEMA "HH:MM:SS" */
			n = 8;
			for (i = 0; tm[i] && n + 1 < size; i++)
				if (tm[i] != ':')
					buf[n++] = tm[i];
		}
	}
	buf[n] = '\0';
	return 1;
}

static cJSON *iso_json(const dt *t)
{
	char buf[48];
	int n = snprintf(buf, sizeof(buf), "%04d", t->y);
	if (t->prec >= 2)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "-%02d", t->mo);
	if (t->prec >= 3)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "-%02d", t->d);
	if (t->prec >= 4)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "T%02d", t->h);
	if (t->prec >= 5)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ":%02d", t->mi);
	else if (t->prec == 4)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ":00");
	if (t->prec >= 6)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ":%02d", t->s);
	if (t->usec_digits) {
		/* the fraction with the digits the report gave */
		int i, v = t->usec;
		for (i = t->usec_digits; i < 6; i++)
			v /= 10;
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ".%0*d", t->usec_digits, v);
	}
	if (t->has_tz && t->prec >= 4)
		snprintf(buf + n, sizeof(buf) - (size_t)n, "%c%02d:%02d", t->tz_min < 0 ? '-' : '+',
		         abs(t->tz_min) / 60, abs(t->tz_min) % 60);
	return cJSON_CreateString(buf);
}

/* epoch seconds of a DT with at least minutes; the offset is the DT's own,
 * else the report's Timezone Offset From UTC, else this machine's local
 * time zone */
static int epoch_of(const dt *t, int report_tz_ok, int report_tz_min, double *out)
{
	struct tm tm;
	time_t secs;
	if (t->prec < 5)
		return 0;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = t->y - 1900;
	tm.tm_mon = t->mo - 1;
	tm.tm_mday = t->d;
	tm.tm_hour = t->h;
	tm.tm_min = t->mi;
	tm.tm_sec = t->s;
	if (t->has_tz || report_tz_ok) {
		secs = timegm(&tm);
		secs -= (time_t)(t->has_tz ? t->tz_min : report_tz_min) * 60;
	} else {
		tm.tm_isdst = -1;
		secs = mktime(&tm);
	}
	if (secs == (time_t)-1)
		return 0;
	*out = (double)secs + t->usec / 1e6;
	return 1;
}

/* "045Y" -> {"value": 45, "unit": "a"} */
static cJSON *age_json(const char *as)
{
	int v;
	const char *unit;
	if (!as || strlen(as) != 4 || !digits(as, 3, &v))
		return cJSON_CreateNull();
	switch (as[3]) {
	case 'Y': unit = "a"; break;
	case 'M': unit = "mo"; break;
	case 'W': unit = "wk"; break;
	case 'D': unit = "d"; break;
	default: return cJSON_CreateNull();
	}
	return measure_json(v, unit);
}

static cJSON *attr_measure(const cJSON *root, const char *tag, const char *unit)
{
	double d;
	if (!num_of(first_value(root, tag), &d))
		return cJSON_CreateNull();
	return measure_json(d, unit);
}

/* one field's value from a content item (or null) */
static cJSON *field_json(const cJSON *item, enum kind kind)
{
	const char *vt;
	if (!item)
		return cJSON_CreateNull();
	vt = vtype_of(item);
	switch (kind) {
	case K_NUM:
		return num_json(item);
	case K_CODE:
		return code_json(item_of(item, "0040A168"));
	case K_TEXT: {
		const char *s = str_of(item, "0040A160");
		return s ? cJSON_CreateString(s) : cJSON_CreateNull();
	}
	case K_UID: {
		const char *s = str_of(item, "0040A124");
		return s ? cJSON_CreateString(s) : cJSON_CreateNull();
	}
	case K_DT: {
		dt t;
		if (!parse_dt(str_of(item, "0040A120"), &t))
			return cJSON_CreateNull();
		return iso_json(&t);
	}
	case K_CODE_OR_TEXT:
		if (vt && !strcmp(vt, "TEXT")) {
			const char *s = str_of(item, "0040A160");
			return s ? cJSON_CreateString(s) : cJSON_CreateNull();
		}
		return code_json(item_of(item, "0040A168"));
	}
	return cJSON_CreateNull();
}

static void add_fields(outstate *o, cJSON *obj, const cJSON *container, const field *f, size_t n,
                       const code *stop)
{
	size_t i;
	const cJSON *kids = children_of(container);
	for (i = 0; i < n; i++)
		add(o, obj, f[i].key, field_json(find(kids, &f[i].c, stop), f[i].kind));
}

/* ---------------------------------------------------------------------- */
/* the report                                                              */
/* ---------------------------------------------------------------------- */

enum tmpl { T_CT, T_PROJECTION, T_RADIOPHARM };

typedef struct report {
	outstate o;
	const cJSON *root;  /* the dataset (= root content item) */
	const cJSON *items; /* root's children */
	enum tmpl tmpl;
	cJSON *events;
	int tz_ok, tz_min;
	int have_first;     /* earliest event datetime seen */
	double first_epoch;
	size_t n_events, n_fluoro, n_acq;
} report;

static void note_event_time(report *r, const cJSON *item)
{
	dt t;
	double e;
	if (!item || !parse_dt(str_of(item, "0040A120"), &t))
		return;
	if (epoch_of(&t, r->tz_ok, r->tz_min, &e) && (!r->have_first || e < r->first_epoch)) {
		r->first_epoch = e;
		r->have_first = 1;
	}
}

static const code C_EVENT_UID = DCM("113769");
static const code C_RP_EVENT_UID = DCM("113503");
static const code C_DATETIME_STARTED = DCM("111526");
static const code C_EVENT_TYPE = DCM("113721");
static const code C_RP_START = DCM("123003");
static const code C_CT_ACQ_TYPE = DCM("113820");
static const code C_EXPOSURE_TIME = DCM("113824");

static void add_event(report *r, const cJSON *ev)
{
	outstate *o = &r->o;
	const cJSON *kids = children_of(ev);
	const cJSON *when;
	cJSON *e = cJSON_CreateObject();
	if (!e || !cJSON_AddItemToArray(r->events, e)) {
		cJSON_Delete(e);
		o->oom = 1;
		return;
	}
	r->n_events++;
	switch (r->tmpl) {
	case T_CT: {
		const cJSON *it;
		cJSON *sources;
		add(o, e, "irradiation_event_uid", field_json(find(kids, &C_EVENT_UID, NULL), K_UID));
		when = find(kids, &C_DATETIME_STARTED, NULL);
		if (!when)
			when = find(kids, &C_START_OF_IRRADIATION, NULL);
		add(o, e, "datetime", field_json(when, K_DT));
		note_event_time(r, when);
		add(o, e, "type", field_json(find(kids, &C_CT_ACQ_TYPE, NULL), K_CODE));
		add_fields(o, e, ev, CT_EVENT, NFIELDS(CT_EVENT), NULL);
		/* every x-ray source (dual source scanners have two) */
		sources = add(o, e, "xray_sources", cJSON_CreateArray());
		it = find(kids, &C_CT_SOURCE_PARAMS, NULL);
		if (sources && it) {
			/* sources are siblings inside CT Acquisition Parameters */
			const cJSON *sib = it;
			for (; sib; sib = sib->next) {
				cJSON *s;
				if (!concept_is(sib, &C_CT_SOURCE_PARAMS))
					continue;
				s = cJSON_CreateObject();
				if (!s || !cJSON_AddItemToArray(sources, s)) {
					cJSON_Delete(s);
					o->oom = 1;
					break;
				}
				add_fields(o, s, sib, CT_SOURCE, NFIELDS(CT_SOURCE), NULL);
			}
		}
		break;
	}
	case T_PROJECTION: {
		const cJSON *type = find(kids, &C_EVENT_TYPE, NULL);
		add(o, e, "irradiation_event_uid", field_json(find(kids, &C_EVENT_UID, NULL), K_UID));
		when = find(kids, &C_DATETIME_STARTED, NULL);
		add(o, e, "datetime", field_json(when, K_DT));
		note_event_time(r, when);
		add(o, e, "type", field_json(type, K_CODE));
		if (type && code_is(item_of(type, "0040A168"), &V_FLUOROSCOPY))
			r->n_fluoro++;
		else if (type && item_of(type, "0040A168"))
			r->n_acq++;
		add_fields(o, e, ev, XRAY_EVENT, NFIELDS(XRAY_EVENT), NULL);
		if (!find(kids, &C_EXPOSURE_TIME, NULL)) {
			const cJSON *old = find(kids, &C_EXPOSURE_TIME_RETIRED, NULL);
			if (old)
				cJSON_ReplaceItemInObjectCaseSensitive(e, "exposure_time", num_json(old));
		}
		break;
	}
	case T_RADIOPHARM: {
		add(o, e, "irradiation_event_uid", field_json(find(kids, &C_RP_EVENT_UID, NULL), K_UID));
		when = find(kids, &C_RP_START, NULL);
		add(o, e, "datetime", field_json(when, K_DT));
		note_event_time(r, when);
		add(o, e, "type", code_json(concept_of(ev)));
		add_fields(o, e, ev, RP_EVENT, NFIELDS(RP_EVENT), NULL);
		break;
	}
	}
}

/* every event container, in document order, anywhere in the tree */
static void collect_events(report *r, const cJSON *items, const code *ev_code)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, items)
	{
		const cJSON *kids;
		if (concept_is(it, ev_code)) {
			add_event(r, it);
			continue;
		}
		kids = children_of(it);
		if (kids)
			collect_events(r, kids, ev_code);
	}
}

static void add_totals(report *r, cJSON *doc)
{
	outstate *o = &r->o;
	cJSON *totals = add(o, doc, "totals", cJSON_CreateObject());
	if (!totals)
		return;
	if (r->tmpl == T_CT) {
		const cJSON *acc = find(r->items, &C_CT_ACCUMULATED, NULL);
		size_t i;
		for (i = 0; i < NFIELDS(CT_TOTALS); i++)
			add(o, totals, CT_TOTALS[i].key,
			    field_json(acc ? find(children_of(acc), &CT_TOTALS[i].c, NULL) : NULL, CT_TOTALS[i].kind));
	} else if (r->tmpl == T_PROJECTION) {
		const cJSON *it;
		cJSON *planes = cJSON_CreateArray();
		const cJSON *only = NULL;
		int n = 0;
		size_t i;
		if (!planes) {
			o->oom = 1;
			return;
		}
		cJSON_ArrayForEach(it, r->items)
		{
			cJSON *p;
			if (!concept_is(it, &C_XRAY_ACCUMULATED))
				continue;
			p = cJSON_CreateObject();
			if (!p || !cJSON_AddItemToArray(planes, p)) {
				cJSON_Delete(p);
				o->oom = 1;
				break;
			}
			add_fields(o, p, it, XRAY_TOTALS, NFIELDS(XRAY_TOTALS), NULL);
			only = it;
			n++;
		}
		/* flat totals: the accumulated data when there is one plane;
		 * with several planes per-plane values are in "planes" only
		 * (doses at different reference points are not summed) */
		for (i = 1; i < NFIELDS(XRAY_TOTALS); i++)
			add(o, totals, XRAY_TOTALS[i].key,
			    field_json(n == 1 ? find(children_of(only), &XRAY_TOTALS[i].c, NULL) : NULL,
			               XRAY_TOTALS[i].kind));
		add(o, totals, "planes", planes);
		add(o, totals, "fluoro_event_count", cJSON_CreateNumber((double)r->n_fluoro));
		add(o, totals, "acquisition_event_count", cJSON_CreateNumber((double)r->n_acq));
	}
	add(o, totals, "event_count", cJSON_CreateNumber((double)r->n_events));
}

static const char *template_name(enum tmpl t)
{
	switch (t) {
	case T_CT: return "CT Radiation Dose";
	case T_PROJECTION: return "Projection X-Ray Radiation Dose";
	case T_RADIOPHARM: return "Radiopharmaceutical Radiation Dose";
	}
	return "";
}

static const char *template_id(enum tmpl t)
{
	switch (t) {
	case T_CT: return "10011";
	case T_PROJECTION: return "10001";
	case T_RADIOPHARM: return "10021";
	}
	return "";
}

/* which template: the Content Template Sequence when it names one, else
 * Procedure reported, else the containers present */
static int identify(report *r)
{
	const cJSON *root = r->root;
	const cJSON *tpl = item_of(root, "0040A504");
	const char *tid = tpl ? str_of(tpl, "0040DB00") : NULL;
	const cJSON *proc;

	if (concept_is(root, &C_RADIOPHARM_DOSE_REPORT)) {
		r->tmpl = T_RADIOPHARM;
		return 0;
	}
	if (!concept_is(root, &C_XRAY_DOSE_REPORT)) {
		if (!vtype_of(root))
			return diana__error_set(DIANA_EUNSUPPORTED, "not a structured report (no content tree)");
		return diana__error_set(DIANA_EUNSUPPORTED,
		                        "not a radiation dose report (document title is not DCM 113701 or 113500)");
	}
	if (tid && !strcmp(tid, "10011")) {
		r->tmpl = T_CT;
		return 0;
	}
	if (tid && !strcmp(tid, "10001")) {
		r->tmpl = T_PROJECTION;
		return 0;
	}
	proc = find(r->items, &C_PROCEDURE_REPORTED, NULL);
	proc = proc ? item_of(proc, "0040A168") : NULL;
	if (code_is(proc, &V_CT_PROCEDURE)) {
		r->tmpl = T_CT;
		return 0;
	}
	if (code_is(proc, &V_PROJECTION_XRAY) || code_is(proc, &V_MAMMOGRAPHY)) {
		r->tmpl = T_PROJECTION;
		return 0;
	}
	if (find(r->items, &C_CT_ACCUMULATED, NULL) || find(r->items, &C_CT_ACQUISITION, NULL)) {
		r->tmpl = T_CT;
		return 0;
	}
	if (find(r->items, &C_XRAY_ACCUMULATED, NULL) || find(r->items, &C_XRAY_EVENT, NULL)) {
		r->tmpl = T_PROJECTION;
		return 0;
	}
	return diana__error_set(DIANA_EUNSUPPORTED,
	                        "X-ray radiation dose report of an unknown kind (neither CT nor projection X-ray)");
}

static void add_top(report *r, cJSON *doc)
{
	outstate *o = &r->o;
	const cJSON *root = r->root;
	cJSON *tmpl;
	const cJSON *it;
	const char *s;
	static const struct {
		const char *key, *tag;
	} attrs[] = {
		{ "sop_instance_uid", "00080018" },
		{ "sop_class_uid", "00080016" },
		{ "accession_number", "00080050" },
		{ "study_instance_uid", "0020000D" },
		{ "study_description", "00081030" },
		{ "modality", "00080060" },
		{ "manufacturer", "00080070" },
		{ "manufacturer_model_name", "00081090" },
		{ "device_serial_number", "00181000" },
		{ "station_name", "00081010" },
		{ "institution_name", "00080080" },
		{ "patient_id", "00100020" },
	};
	size_t i;
	char buf[64];
	dt t;

	for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
		if (i == 2) {
			tmpl = add(o, doc, "template", cJSON_CreateObject());
			if (tmpl) {
				add_str(o, tmpl, "id", template_id(r->tmpl));
				add_str(o, tmpl, "name", template_name(r->tmpl));
			}
		}
		add_str(o, doc, attrs[i].key, str_of(root, attrs[i].tag));
	}
	/* study date and time (ISO 8601) */
	s = str_of(root, "00080020");
	if (s && parse_dt(s, &t) && t.prec == 3)
		add(o, doc, "study_date", iso_json(&t));
	else
		add(o, doc, "study_date", cJSON_CreateNull());
	s = str_of(root, "00080030");
	if (s && da_tm_to_dt("20000101", s, buf, sizeof(buf)) && parse_dt(buf, &t) && t.prec >= 4) {
		cJSON *iso = iso_json(&t);
		/* keep the time part: after the 'T' */
		if (iso && cJSON_IsString(iso)) {
			const char *tp = strchr(iso->valuestring, 'T');
			add(o, doc, "study_time", cJSON_CreateString(tp ? tp + 1 : ""));
		} else {
			o->oom = 1;
		}
		cJSON_Delete(iso);
	} else {
		add(o, doc, "study_time", cJSON_CreateNull());
	}
	/* procedure reported */
	it = find(r->items, &C_PROCEDURE_REPORTED, NULL);
	add(o, doc, "procedure_reported", field_json(it, K_CODE));

	/* patient characteristics: attributes, else the content tree */
	s = str_of(root, "00101010");
	if (s)
		add(o, doc, "patient_age", age_json(s));
	else
		add(o, doc, "patient_age", field_json(find(r->items, &C_SUBJECT_AGE, NULL), K_NUM));
	s = str_of(root, "00100040");
	if (s) {
		add_str(o, doc, "patient_sex", s);
	} else {
		const cJSON *sex = find(r->items, &C_SUBJECT_SEX, NULL);
		const cJSON *c = sex ? item_of(sex, "0040A168") : NULL;
		add_str(o, doc, "patient_sex", c ? code_value(c) : NULL);
	}
	if (first_value(root, "00101020"))
		add(o, doc, "patient_size", attr_measure(root, "00101020", "m"));
	else
		add(o, doc, "patient_size", field_json(find(r->items, &C_PATIENT_HEIGHT, NULL), K_NUM));
	if (first_value(root, "00101030"))
		add(o, doc, "patient_weight", attr_measure(root, "00101030", "kg"));
	else
		add(o, doc, "patient_weight", field_json(find(r->items, &C_PATIENT_WEIGHT, NULL), K_NUM));
}

static int report_time(report *r, cJSON *doc)
{
	outstate *o = &r->o;
	const char *da = str_of(r->root, "00080020"), *tm = str_of(r->root, "00080030");
	char buf[64];
	dt t;
	double e;

	if (da && tm && da_tm_to_dt(da, tm, buf, sizeof(buf)) && parse_dt(buf, &t) &&
	    epoch_of(&t, r->tz_ok, r->tz_min, &e)) {
		add(o, doc, "time", cJSON_CreateNumber(e));
		add_str(o, doc, "time_source", "study");
		return 0;
	}
	if (r->have_first) {
		add(o, doc, "time", cJSON_CreateNumber(r->first_epoch));
		add_str(o, doc, "time_source", "irradiation");
		return 0;
	}
	add(o, doc, "time", cJSON_CreateNull());
	add(o, doc, "time_source", cJSON_CreateNull());
	return 0;
}

static void set_null(outstate *o, cJSON *obj, const char *key)
{
	cJSON *n = cJSON_CreateNull();
	if (!n || !cJSON_ReplaceItemInObjectCaseSensitive(obj, key, n)) {
		cJSON_Delete(n);
		o->oom = 1;
	}
}

static void drop_dates(report *r, cJSON *doc)
{
	cJSON *e;
	set_null(&r->o, doc, "study_date");
	set_null(&r->o, doc, "study_time");
	set_null(&r->o, doc, "time");
	set_null(&r->o, doc, "time_source");
	if (r->events)
		cJSON_ArrayForEach(e, r->events)
			set_null(&r->o, e, "datetime");
}

int diana__dose_convert(const cJSON *root, uint32_t flags, char **out_json)
{
	report r;
	cJSON *doc;
	const char *tz, *ltim;
	int rc, n_items = 0;
	char *text;

	memset(&r, 0, sizeof(r));
	r.root = root;
	r.items = children_of(root);
	if ((rc = identify(&r)) < 0)
		return rc;
	if (!r.items)
		return diana__error_set(DIANA_EDICOM, "dose report without content (0040,A730)");
	if ((rc = check_tree(r.items, 1, &n_items)) < 0)
		return rc;
	tz = str_of(root, "00080201");
	if (tz && parse_tz(tz, &r.tz_min))
		r.tz_ok = 1;

	doc = cJSON_CreateObject();
	if (!doc)
		return diana__error_oom();
	add_top(&r, doc);
	r.events = add(&r.o, doc, "events", cJSON_CreateArray());
	if (r.events)
		collect_events(&r, r.items,
		               r.tmpl == T_CT ? &C_CT_ACQUISITION
		                              : r.tmpl == T_PROJECTION ? &C_XRAY_EVENT : &C_RADIOPHARM_ADMIN);
	add_totals(&r, doc);
	report_time(&r, doc);
	/* a de-identified report whose dates were removed (PS3.15: Longitudinal
	 * Temporal Information Modified = REMOVED) carries dummy dates: they
	 * are not dates of anything */
	ltim = str_of(root, "00280303");
	if (ltim && !strcmp(ltim, "REMOVED"))
		drop_dates(&r, doc);
	if (r.o.oom) {
		cJSON_Delete(doc);
		return diana__error_oom();
	}
	text = (flags & DIANA_DOSE_PRETTY) ? cJSON_Print(doc) : cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	if (!text)
		return diana__error_oom();
	*out_json = text;
	return 0;
}
