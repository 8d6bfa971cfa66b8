/*
 * libdiana - value helpers: padding, IS/DS/UI syntax, text as UTF-8,
 * numbers as text.
 * SPDX-License-Identifier: MIT
 */
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include "../core/core.h"
#include "dicom.h"
#include "dsmodel.h"

namespace diana_dcm {

bool Item::insert(Element &&el)
{
	auto it = std::lower_bound(elems.begin(), elems.end(), el.tag,
	                           [](const Element &e, uint32_t t) { return e.tag < t; });
	if (it != elems.end() && it->tag == el.tag)
		return false;
	elems.insert(it, std::move(el));
	return true;
}

const Element *Item::find(uint32_t tag) const
{
	auto it = std::lower_bound(elems.begin(), elems.end(), tag,
	                           [](const Element &e, uint32_t t) { return e.tag < t; });
	return (it != elems.end() && it->tag == tag) ? &*it : nullptr;
}

Element *Item::find(uint32_t tag)
{
	return const_cast<Element *>(static_cast<const Item *>(this)->find(tag));
}

const Element *Dataset::find_meta(uint32_t tag) const
{
	for (const Element &e : meta)
		if (e.tag == tag)
			return &e;
	return nullptr;
}

void swap_words(std::string &s, unsigned size)
{
	if (size < 2)
		return;
	for (size_t i = 0; i + size <= s.size(); i += size)
		std::reverse(s.begin() + static_cast<std::ptrdiff_t>(i),
		             s.begin() + static_cast<std::ptrdiff_t>(i + size));
}

std::vector<std::string> split_values(const std::string &s)
{
	std::vector<std::string> out;
	size_t start = 0;
	for (;;) {
		size_t p = s.find('\\', start);
		if (p == std::string::npos) {
			out.push_back(s.substr(start));
			return out;
		}
		out.push_back(s.substr(start, p - start));
		start = p + 1;
	}
}

static bool leading_insignificant(uint16_t vr)
{
	switch (vr) {
	case VR_AE: case VR_AS: case VR_CS: case VR_DA: case VR_DS: case VR_DT:
	case VR_IS: case VR_LO: case VR_SH: case VR_TM: case VR_UI:
		return true;
	default:
		return false;
	}
}

std::string trim_value(const std::string &v, uint16_t vr)
{
	size_t b = 0, e = v.size();
	while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\0'))
		e--;
	if (leading_insignificant(vr))
		while (b < e && v[b] == ' ')
			b++;
	return v.substr(b, e - b);
}

static std::string trim_spaces(const std::string &v)
{
	size_t b = 0, e = v.size();
	while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\0'))
		e--;
	while (b < e && v[b] == ' ')
		b++;
	return v.substr(b, e - b);
}

bool valid_is(const std::string &raw)
{
	/* syntax and range are checked; the 12-byte limit is not (a longer
	 * value is no ambiguity) */
	std::string v = trim_spaces(raw);
	if (v.empty())
		return true;
	size_t i = (v[0] == '+' || v[0] == '-') ? 1 : 0;
	if (i == v.size())
		return false;
	for (size_t k = i; k < v.size(); k++)
		if (v[k] < '0' || v[k] > '9')
			return false;
	if (v.size() - i > 18) {
		size_t z = i;
		while (z < v.size() - 1 && v[z] == '0')
			z++;
		if (v.size() - z > 10)
			return false;
	}
	long long n = strtoll(v.c_str(), nullptr, 10);
	return n >= -2147483648LL && n <= 2147483647LL;
}

bool valid_ds(const std::string &raw)
{
	/* syntax and a finite value are checked; the 16-byte limit is not
	 * (vendors exceed it; a longer value is no ambiguity) */
	std::string v = trim_spaces(raw);
	if (v.empty())
		return true;
	size_t i = 0, n = v.size();
	if (v[i] == '+' || v[i] == '-')
		i++;
	size_t digits = 0;
	while (i < n && v[i] >= '0' && v[i] <= '9') {
		i++;
		digits++;
	}
	if (i < n && v[i] == '.') {
		i++;
		while (i < n && v[i] >= '0' && v[i] <= '9') {
			i++;
			digits++;
		}
	}
	if (!digits)
		return false;
	if (i < n && (v[i] == 'e' || v[i] == 'E')) {
		i++;
		if (i < n && (v[i] == '+' || v[i] == '-'))
			i++;
		size_t ed = 0;
		while (i < n && v[i] >= '0' && v[i] <= '9') {
			i++;
			ed++;
		}
		if (!ed)
			return false;
	}
	if (i != n)
		return false;
	const char *s = v.c_str() + (v[0] == '+' ? 1 : 0);
	double d;
	auto r = std::from_chars(s, v.c_str() + n, d);
	return r.ec == std::errc() && std::isfinite(d);
}

bool valid_ui(const std::string &raw)
{
	size_t e = raw.size();
	while (e > 0 && (raw[e - 1] == '\0' || raw[e - 1] == ' '))
		e--;
	if (e == 0)
		return true;
	if (e > 64)
		return false;
	bool comp_empty = true;
	for (size_t i = 0; i < e; i++) {
		char c = raw[i];
		if (c == '.') {
			if (comp_empty)
				return false;
			comp_empty = true;
		} else if (c >= '0' && c <= '9') {
			comp_empty = false;
		} else {
			return false;
		}
	}
	return !comp_empty;
}

bool valid_utf8(const char *s, size_t n)
{
	const unsigned char *p = reinterpret_cast<const unsigned char *>(s);
	size_t i = 0;
	while (i < n) {
		unsigned c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		uint32_t cp;
		if (c >= 0xC2 && c <= 0xDF) {
			len = 2;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			len = 3;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3F);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += len;
	}
	return true;
}

static bool plain_ascii(const std::string &s)
{
	for (unsigned char c : s)
		if (c >= 0x80 || c == 0x1B)
			return false;
	return true;
}

std::string element_text(const Element &el, const char *charset)
{
	if (!vr_charset_text(el.vr) && plain_ascii(el.value))
		return el.value;
	char *out = nullptr;
	int rc = diana__charset_to_utf8(charset, el.value.data(), el.value.size(), el.vr == VR_PN, &out);
	if (rc == DIANA_ENOMEM)
		throw std::bad_alloc();
	if (rc < 0 || !out) {
		free(out);
		fail(DIANA_EDICOM, "text of element (%04X,%04X) cannot be decoded from its character set",
		     el.tag >> 16, el.tag & 0xFFFF);
	}
	std::string s(out);
	free(out);
	if (!valid_utf8(s.data(), s.size()))
		fail(DIANA_EDICOM, "text of element (%04X,%04X) is not valid UTF-8 after conversion",
		     el.tag >> 16, el.tag & 0xFFFF);
	return s;
}

std::string fmt_double(double v)
{
	if (std::isnan(v))
		return "NaN";
	if (std::isinf(v))
		return v < 0 ? "-Infinity" : "Infinity";
	char buf[64];
	auto r = std::to_chars(buf, buf + sizeof buf, v);
	return std::string(buf, r.ptr);
}

std::string fmt_float(float v)
{
	if (std::isnan(v))
		return "NaN";
	if (std::isinf(v))
		return v < 0 ? "-Infinity" : "Infinity";
	char buf[64];
	auto r = std::to_chars(buf, buf + sizeof buf, v);
	return std::string(buf, r.ptr);
}

std::string element_numbers_text(const Element &el)
{
	unsigned sz = el.vr == VR_AT ? 4 : vr_word_size(el.vr);
	std::string out;
	char buf[64];
	const char *p = el.value.data();
	size_t n = el.value.size() / sz;
	for (size_t i = 0; i < n; i++, p += sz) {
		if (i)
			out += '\\';
		switch (el.vr) {
		case VR_US: out += std::to_string(load_le<uint16_t>(p)); break;
		case VR_SS: out += std::to_string(load_le<int16_t>(p)); break;
		case VR_UL: out += std::to_string(load_le<uint32_t>(p)); break;
		case VR_SL: out += std::to_string(load_le<int32_t>(p)); break;
		case VR_UV: out += std::to_string(load_le<uint64_t>(p)); break;
		case VR_SV: out += std::to_string(load_le<int64_t>(p)); break;
		case VR_FL: out += fmt_float(load_le<float>(p)); break;
		case VR_FD: out += fmt_double(load_le<double>(p)); break;
		case VR_AT:
			snprintf(buf, sizeof buf, "%04X%04X", load_le<uint16_t>(p), load_le<uint16_t>(p + 2));
			out += buf;
			break;
		default:
			break;
		}
	}
	return out;
}

const char *item_charset(const Item &it, std::string &storage)
{
	const Element *e = it.find(TAG_CHARSET);
	if (!e)
		return nullptr;
	storage = e->value;
	while (!storage.empty() && (storage.back() == ' ' || storage.back() == '\0'))
		storage.pop_back();
	return storage.c_str();
}

} // namespace diana_dcm
