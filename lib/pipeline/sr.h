/*
 * libdiana - DICOM Structured Reports holding a model's result, referencing
 * the study they are about. Internal to lib/pipeline.
 *
 * The result JSON (what a model prints; see doc/pipeline.md):
 *   {"summary": "text",                        -> a TEXT item "Impression"-like
 *    "items": [
 *      {"type": "text", "name": "Finding", "value": "..."},
 *      {"type": "code", "name": "Finding", "code": {"value": "...", "scheme": "SCT", "meaning": "..."}},
 *      {"type": "num",  "name": "Bone age", "value": 12.5, "unit": "a"}   (UCUM unit)
 *    ]}
 * Unknown keys are ignored; names become concept names (coded with a
 * private scheme "99DIANA" unless given as {"value","scheme","meaning"}).
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_PIPELINE_SR_H
#define DIANA_PIPELINE_SR_H

#include <stddef.h>
#include <stdint.h>

#include <diana/dataset.h>

struct cJSON;

typedef struct diana__sr_options {
	const char *model_name;        /* -> ContentCreatorsName? / SeriesDescription "DIANA <model>" */
	const char *series_description; /* NULL: "DIANA AI result" */
	const char *uid_root;          /* NULL: 2.25 UUID-derived UIDs */
} diana__sr_options;

/**
 * Build a Comprehensive SR (Part 10 bytes, Explicit VR Little Endian) about
 * the study whose attributes are in `study` (a representative instance:
 * patient and study attributes are copied, Study Instance UID kept so the SR
 * joins the study; new Series/SOP Instance UIDs; CurrentRequestedProcedure
 * Evidence Sequence / referenced instances when given), holding `result`.
 * `*out` is released with diana_free(). DIANA_EINVAL for a result that is
 * not an object or has malformed items (one line, no values).
 */
int diana__sr_build(const diana_dataset *study, const struct cJSON *result, const diana__sr_options *o,
                    uint8_t **out, size_t *len);

#endif /* DIANA_PIPELINE_SR_H */
