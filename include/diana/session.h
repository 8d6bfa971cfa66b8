/*
 * libdiana - session (being written).
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_SESSION_H
#define DIANA_SESSION_H

#include <diana/common.h>
#include <diana/dataset.h>

DIANA_BEGIN_DECL

DIANA_END_DECL

#endif /* DIANA_SESSION_H */
