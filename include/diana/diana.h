/*
 * libdiana - DICOM Image ANalysis and Archive, as an embeddable C library.
 * Umbrella header: include this one.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DIANA_H
#define DIANA_DIANA_H

#include <diana/version.h>
#include <diana/common.h>
#include <diana/dataset.h>
#include <diana/profile.h>
#include <diana/scan.h>
#include <diana/session.h>
#include <diana/job.h>
#include <diana/pipeline.h>
#include <diana/dose.h>

#endif /* DIANA_DIANA_H */
