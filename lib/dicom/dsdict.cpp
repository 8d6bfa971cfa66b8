/*
 * libdiana - VR tables and the data dictionary (GDCM's public dictionary,
 * made a constant table at build time by gen_dict.cpp).
 * SPDX-License-Identifier: MIT
 */
#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>


#include "dsmodel.h"

namespace diana_dcm {

void fail(int code, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	throw Error(code, buf);
}

bool vr_known(uint16_t vr)
{
	switch (vr) {
	case VR_AE: case VR_AS: case VR_AT: case VR_CS: case VR_DA: case VR_DS:
	case VR_DT: case VR_FD: case VR_FL: case VR_IS: case VR_LO: case VR_LT:
	case VR_OB: case VR_OD: case VR_OF: case VR_OL: case VR_OV: case VR_OW:
	case VR_PN: case VR_SH: case VR_SL: case VR_SQ: case VR_SS: case VR_ST:
	case VR_SV: case VR_TM: case VR_UC: case VR_UI: case VR_UL: case VR_UN:
	case VR_UR: case VR_US: case VR_UT: case VR_UV:
		return true;
	default:
		return false;
	}
}

bool vr_long_form(uint16_t vr)
{
	switch (vr) {
	case VR_OB: case VR_OD: case VR_OF: case VR_OL: case VR_OV: case VR_OW:
	case VR_SQ: case VR_UC: case VR_UN: case VR_UR: case VR_UT: case VR_SV:
	case VR_UV:
		return true;
	default:
		return false;
	}
}

unsigned vr_word_size(uint16_t vr)
{
	switch (vr) {
	case VR_US: case VR_SS: case VR_OW: case VR_AT:
		return 2;
	case VR_UL: case VR_SL: case VR_FL: case VR_OF: case VR_OL:
		return 4;
	case VR_FD: case VR_OD: case VR_UV: case VR_SV: case VR_OV:
		return 8;
	default:
		return 1;
	}
}

bool vr_is_binary(uint16_t vr)
{
	switch (vr) {
	case VR_OB: case VR_OD: case VR_OF: case VR_OL: case VR_OV: case VR_OW: case VR_UN:
		return true;
	default:
		return false;
	}
}

bool vr_is_numeric(uint16_t vr)
{
	switch (vr) {
	case VR_US: case VR_SS: case VR_UL: case VR_SL: case VR_UV: case VR_SV:
	case VR_FL: case VR_FD:
		return true;
	default:
		return false;
	}
}

bool vr_is_string(uint16_t vr)
{
	return vr_known(vr) && vr != VR_SQ && vr != VR_AT && !vr_is_binary(vr) && !vr_is_numeric(vr);
}

bool vr_multi_valued(uint16_t vr)
{
	return vr_is_string(vr) && vr != VR_LT && vr != VR_ST && vr != VR_UT && vr != VR_UR;
}

bool vr_charset_text(uint16_t vr)
{
	switch (vr) {
	case VR_SH: case VR_LO: case VR_ST: case VR_LT: case VR_PN: case VR_UC: case VR_UT:
		return true;
	default:
		return false;
	}
}

std::string vr_str(uint16_t vr)
{
	std::string s(2, ' ');
	s[0] = static_cast<char>(vr >> 8);
	s[1] = static_cast<char>(vr & 0xFF);
	return s;
}

namespace {

/* a dictionary VR: two letters, or one of GDCM's ambiguous ones */
constexpr uint16_t DV(char a, char b)
{
	return static_cast<uint16_t>((static_cast<uint8_t>(a) << 8) | static_cast<uint8_t>(b));
}
constexpr uint16_t DV_NONE = 0, DV_OB_OW = 1, DV_US_SS = 2, DV_US_SS_OW = 3, DV_US_OW = 4;

struct DictRow {
	uint32_t tag;
	uint16_t vr;
	const char *keyword;
};

/* dict_rows (by tag) and dict_by_keyword (indexes, by keyword) */
#include "dict_table.inc"

const DictRow *public_entry(uint32_t tag)
{
	/* exact tags only, as gdcm::Dict::GetDictEntry() (repeating groups are
	 * listed under their first group) */
	const DictRow *end = dict_rows + sizeof dict_rows / sizeof dict_rows[0];
	const DictRow *r = std::lower_bound(dict_rows, end, tag, [](const DictRow &a, uint32_t t) { return a.tag < t; });
	return (r != end && r->tag == tag) ? r : nullptr;
}

} // namespace

uint16_t dict_vr(uint32_t tag, int pixel_rep)
{
	uint16_t group = static_cast<uint16_t>(tag >> 16), elem = static_cast<uint16_t>(tag & 0xFFFF);

	if (elem == 0)
		return VR_UL;
	if (group & 1)
		return (elem >= 0x0010 && elem <= 0x00FF) ? VR_LO : VR_UN;
	const DictRow *e = public_entry(tag);
	if (!e)
		return VR_UN;
	switch (e->vr) {
	case DV_OB_OW:
		return VR_OW; /* PS3.5 A.1: implicit VR means OW */
	case DV_US_SS:
	case DV_US_SS_OW:
		return pixel_rep == 1 ? VR_SS : VR_US;
	case DV_US_OW:
		return VR_US;
	case DV_NONE:
		return VR_UN;
	default:
		return vr_known(e->vr) ? e->vr : VR_UN;
	}
}

const char *dict_keyword(uint32_t tag)
{
	uint16_t group = static_cast<uint16_t>(tag >> 16), elem = static_cast<uint16_t>(tag & 0xFFFF);

	if (group & 1)
		return "";
	if (elem == 0 && group != 0x0000 && group != 0x0002)
		return "";
	const DictRow *e = public_entry(tag);
	return e ? e->keyword : "";
}

bool dict_lookup(const char *keyword, uint32_t *tag)
{
	const unsigned short *end = dict_by_keyword + sizeof dict_by_keyword / sizeof dict_by_keyword[0];
	const unsigned short *i = std::lower_bound(dict_by_keyword, end, keyword, [](unsigned short a, const char *k) {
		return std::strcmp(dict_rows[a].keyword, k) < 0;
	});
	if (i == end || std::strcmp(dict_rows[*i].keyword, keyword) != 0)
		return false;
	*tag = dict_rows[*i].tag;
	return true;
}

} // namespace diana_dcm
