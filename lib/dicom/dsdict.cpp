/*
 * libdiana - VR tables and the data dictionary (through GDCM's public dict).
 * SPDX-License-Identifier: MIT
 */
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>

#include <gdcmDict.h>
#include <gdcmDictEntry.h>
#include <gdcmDicts.h>
#include <gdcmGlobal.h>
#include <gdcmTag.h>
#include <gdcmVR.h>

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

static const gdcm::DictEntry *public_entry(uint32_t tag)
{
	/* the public dictionary only: gdcm::Dicts::GetDictEntry() writes into a
	 * static entry for private and group length tags (not thread-safe);
	 * gdcm::Dict::GetDictEntry() is a lookup in a constant map */
	const gdcm::Dict &dict = gdcm::Global::GetInstance().GetDicts().GetPublicDict();
	const gdcm::DictEntry &e = dict.GetDictEntry(gdcm::Tag(static_cast<uint16_t>(tag >> 16),
	                                                       static_cast<uint16_t>(tag & 0xFFFF)));
	const char *kw = e.GetKeyword();
	if (!kw || !*kw)
		return nullptr;
	return &e;
}

uint16_t dict_vr(uint32_t tag, int pixel_rep)
{
	uint16_t group = static_cast<uint16_t>(tag >> 16), elem = static_cast<uint16_t>(tag & 0xFFFF);

	if (elem == 0)
		return VR_UL;
	if (group & 1)
		return (elem >= 0x0010 && elem <= 0x00FF) ? VR_LO : VR_UN;
	const gdcm::DictEntry *e = public_entry(tag);
	if (!e)
		return VR_UN;
	gdcm::VR::VRType v = e->GetVR();
	switch (v) {
	case gdcm::VR::OB_OW:
		return VR_OW; /* PS3.5 A.1: implicit VR means OW */
	case gdcm::VR::US_SS:
	case gdcm::VR::US_SS_OW:
		return pixel_rep == 1 ? VR_SS : VR_US;
	case gdcm::VR::US_OW:
		return VR_US;
	default:
		break;
	}
	const char *s = gdcm::VR::GetVRString(v);
	if (!s || strlen(s) != 2)
		return VR_UN;
	uint16_t r = vr2(s[0], s[1]);
	return vr_known(r) ? r : VR_UN;
}

const char *dict_keyword(uint32_t tag)
{
	uint16_t group = static_cast<uint16_t>(tag >> 16), elem = static_cast<uint16_t>(tag & 0xFFFF);

	if (group & 1)
		return "";
	if (elem == 0 && group != 0x0000 && group != 0x0002)
		return "";
	const gdcm::DictEntry *e = public_entry(tag);
	return e ? e->GetKeyword() : "";
}

namespace {

std::unordered_map<std::string, uint32_t> build_kw_map()
{
	std::unordered_map<std::string, uint32_t> m;
	const gdcm::Dict &d = gdcm::Global::GetInstance().GetDicts().GetPublicDict();
	for (auto it = d.Begin(); it != d.End(); ++it) {
		const char *kw = it->second.GetKeyword();
		if (!kw || !*kw)
			continue;
		uint32_t tag = (static_cast<uint32_t>(it->first.GetGroup()) << 16) | it->first.GetElement();
		/* the dictionary is ordered: the first (lowest) tag of a repeating group wins */
		m.emplace(kw, tag);
	}
	return m;
}

} // namespace

bool dict_lookup(const char *keyword, uint32_t *tag)
{
	/* built once, thread-safe (C++11 static initialisation), read-only afterwards */
	static const std::unordered_map<std::string, uint32_t> map = build_kw_map();
	auto it = map.find(keyword);
	if (it == map.end())
		return false;
	*tag = it->second;
	return true;
}

} // namespace diana_dcm
