/*
 * libdiana - the de-identification engine's private structures (profile,
 * result). Internal to lib/deid.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DEID_ENGINE_H
#define DIANA_DEID_ENGINE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "deid.h"
#include "mint.h"
#include "scan/keyfile.h"

#define DIANA__SHIFT_DEFAULT_DAYS 365
#define DIANA__SHIFT_MAX_DAYS 36500

typedef struct diana__override {
	uint32_t tag;
	int action;  /* DIANA_ACTION_KEEP ... REPLACE */
	char *value; /* REPLACE: UTF-8 text */
} diana__override;

struct diana_profile {
	uint32_t options;         /* DIANA_DEID_* */
	int shift_max_days;       /* RETAIN_LONG_MODIFIED_DATES range */
	diana__mint *mint;        /* keyed with the project secret */
	diana__keyfile *key;      /* NULL without a key file */
	diana__override *ov;      /* sorted by tag */
	size_t nov;
	/* the elements add_method() writes into an input that has no method or
	 * code sequence of its own: built once per profile ([1]: with
	 * overrides), under method_lock, then read-only */
	pthread_mutex_t method_lock;
	diana_dataset *method_ds[2];
};

/* Fields of a result, in this order. */
enum {
	DIANA__R_PATIENT_ID,
	DIANA__R_PATIENT_NAME,
	DIANA__R_PATIENT_BIRTH_DATE,
	DIANA__R_ACCESSION,
	DIANA__R_STUDY_UID,
	DIANA__R_SERIES_UID,
	DIANA__R_SOP_UID,
	DIANA__R_STUDY_DATE,
	DIANA__R_N /* originals follow at +DIANA__R_N */
};

struct diana_deid_result {
	char *v[2 * DIANA__R_N]; /* new values, then originals; NULL = absent */
};

extern const char *const diana__result_fields[DIANA__R_N];

/**
 * The key a patient's pseudonyms (code, sham name, date shift) derive from:
 * "id:" Patient ID; without one, "name:" name "\\" birth date; else
 * "study:" Study Instance UID (values as diana_dataset_get() gives them;
 * NULL for absent). `*out` is freed with free().
 */
int diana__deid_patient_key(const char *pid, const char *name, const char *birth, const char *study, char **out,
                            size_t *len);

/** Override of `tag`, or NULL. */
const diana__override *diana__profile_override(const diana_profile *p, uint32_t tag);

#endif /* DIANA_DEID_ENGINE_H */
