/*
 * libdiana - dose (being written).
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DOSE_H
#define DIANA_DOSE_H

#include <diana/common.h>
#include <diana/dataset.h>

DIANA_BEGIN_DECL

DIANA_END_DECL

#endif /* DIANA_DOSE_H */
