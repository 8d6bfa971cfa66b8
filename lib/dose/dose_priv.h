/*
 * libdiana - internal interface of lib/dose.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DOSE_PRIV_H
#define DIANA_DOSE_PRIV_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include <diana/dose.h>

#include "../core/core.h"

/** DICOM JSON of a dose report (the dataset object) -> the dose document. */
int diana__dose_convert(const cJSON *root, uint32_t flags, char **out_json);

#endif /* DIANA_DOSE_PRIV_H */
