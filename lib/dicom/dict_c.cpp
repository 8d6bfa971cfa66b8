/*
 * libdiana - the data dictionary (GDCM's public dictionary) for the other
 * modules: C entry points over dsdict.cpp. Never throws.
 * SPDX-License-Identifier: MIT
 */
#include "dicom.h"
#include "dsmodel.h"

extern "C" {
#include "../core/core.h"
}

int diana__dict_lookup(const char *keyword, uint32_t *tag) DIANA_NOEXCEPT
{
	if (!keyword || !tag)
		return DIANA_EINVAL;
	try {
		return diana_dcm::dict_lookup(keyword, tag) ? 0 : DIANA_ENOTFOUND;
	} catch (...) {
		return DIANA_ENOMEM;
	}
}

const char *diana__dict_keyword(uint32_t tag) DIANA_NOEXCEPT
{
	try {
		return diana_dcm::dict_keyword(tag);
	} catch (...) {
		return "";
	}
}

void diana__dict_vr(uint32_t tag, char vr[3]) DIANA_NOEXCEPT
{
	uint16_t v;
	try {
		v = diana_dcm::dict_vr(tag, 0);
	} catch (...) {
		v = diana_dcm::vr2('U', 'N');
	}
	vr[0] = static_cast<char>(v >> 8);
	vr[1] = static_cast<char>(v & 0xFF);
	vr[2] = '\0';
}
