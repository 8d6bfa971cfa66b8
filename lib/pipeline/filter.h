/*
 * libdiana - study filters of pipelines: rules over DICOM attributes loaded
 * from JSON. Internal to lib/pipeline.
 *
 * JSON (see doc/pipeline.md):
 *   {"tag": "Modality", "equals": "CT"}
 *   {"tag": "Modality", "one_of": ["CT", "MR"]}
 *   {"tag": "StudyDescription", "regex": "HEAD|BRAIN"}      (POSIX extended, case-insensitive
 *                                                           unless "case_sensitive": true)
 *   {"tag": "PatientAge", "range": [0, 18]}                 (numbers; AS "012Y" understood;
 *                                                           either end may be null)
 *   {"tag": "BodyPartExamined", "present": true}            (false: absent)
 *   {"all": [rule...]}, {"any": [rule...]}, {"not": rule}
 * "tag" is a keyword, a tag ("0008,0060") or a path as in diana_dataset_get().
 * Multi-valued elements match when any value matches (equals, one_of,
 * regex, range).
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_PIPELINE_FILTER_H
#define DIANA_PIPELINE_FILTER_H

#include <diana/dataset.h>

struct cJSON;
typedef struct diana__filter diana__filter;

/**
 * Compile a filter from parsed JSON (NULL or an empty object: match all).
 * DIANA_EINVAL with one line naming the bad rule by its position
 * ("filter.all[1]: unknown operator 'equal'") on any error.
 */
int diana__filter_new(const struct cJSON *json, diana__filter **out);
/** 1 when `ds` matches, 0 when not, a negative code on error. Thread-safe. */
int diana__filter_match(const diana__filter *f, const diana_dataset *ds);
void diana__filter_free(diana__filter *f);

#endif /* DIANA_PIPELINE_FILTER_H */
