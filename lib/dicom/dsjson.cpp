/*
 * libdiana - DICOM JSON (PS3.18 Annex F): export with our own emitter
 * (exact number formatting, no intermediate tree), import with cJSON.
 *
 * Representation choices beyond Annex F, documented in dataset.h:
 *  - encapsulated Pixel Data: {"vr":"OB","InlineBinary": base64 of the item
 *    stream as encoded in the file without the final Sequence Delimitation
 *    Item: Basic Offset Table item, then one item per fragment, little
 *    endian (the bytes pydicom holds for such a value). Import restores the
 *    fragments when the transfer syntax is an encapsulated one, or, without
 *    a transfer syntax in the JSON, when the bytes are exactly such a chain
 *    of items.
 *  - FL/FD values that are not finite: the strings "NaN", "Infinity",
 *    "-Infinity". UV/SV beyond +-2^53: decimal strings.
 *  - FL values are written as the shortest decimal of their double value,
 *    so that any JSON reader gets the exact float back.
 * SPDX-License-Identifier: MIT
 */
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include <cjson/cJSON.h>

#include "../core/core.h"
#include "dsmodel.h"

namespace diana_dcm {

namespace {

constexpr uint32_t JSON_PRETTY = 1u << 0;
constexpr uint32_t JSON_NO_BULK = 1u << 1;
constexpr uint32_t JSON_META = 1u << 2;
constexpr size_t BULK_LIMIT = 1024;

/* ------------------------------------------------------------------------ */
/* export                                                                    */
/* ------------------------------------------------------------------------ */

void json_str(Buf &b, const std::string &s)
{
	static const char hex[] = "0123456789abcdef";
	b.putc('"');
	size_t run = 0;
	for (size_t i = 0; i < s.size(); i++) {
		unsigned char c = static_cast<unsigned char>(s[i]);
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		b.put(s.data() + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': b.put("\\\"", 2); break;
		case '\\': b.put("\\\\", 2); break;
		case '\n': b.put("\\n", 2); break;
		case '\r': b.put("\\r", 2); break;
		case '\t': b.put("\\t", 2); break;
		case '\b': b.put("\\b", 2); break;
		case '\f': b.put("\\f", 2); break;
		default: {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			b.put(u, 6);
		}
		}
	}
	b.put(s.data() + run, s.size() - run);
	b.putc('"');
}

class Emitter {
public:
	Emitter(Buf &b, const Dataset &ds, uint32_t flags)
	    : b_(b), ds_(ds), pretty_(flags & JSON_PRETTY), no_bulk_(flags & JSON_NO_BULK) {}

	void dataset(const std::vector<Element> &meta, const std::vector<Element> &elems, const char *charset)
	{
		b_.putc('{');
		depth_++;
		bool first = true;
		for (const Element &el : meta)
			member(el, charset, first);
		for (const Element &el : elems)
			member(el, charset, first);
		depth_--;
		if (!first)
			nl();
		b_.putc('}');
	}

private:
	void nl()
	{
		if (!pretty_)
			return;
		b_.putc('\n');
		for (int i = 0; i < depth_; i++)
			b_.put("  ", 2);
	}
	void sep(bool &first)
	{
		if (!first)
			b_.putc(',');
		first = false;
		nl();
	}
	void key(const char *k)
	{
		b_.putc('"');
		b_.puts(k);
		b_.put(pretty_ ? "\": " : "\":", pretty_ ? 3 : 2);
	}
	void str(const std::string &s) { json_str(b_, s); }

	/* "Value": [ ... ] with one already formatted JSON token per value */
	void value_array(const std::vector<std::string> &tokens, bool &first)
	{
		sep(first);
		key("Value");
		b_.putc('[');
		depth_++;
		for (size_t i = 0; i < tokens.size(); i++) {
			if (i)
				b_.putc(',');
			nl();
			b_.append(tokens[i]);
		}
		depth_--;
		nl();
		b_.putc(']');
	}

	static std::string quoted(const std::string &s)
	{
		Buf tmp;
		json_str(tmp, s);
		return std::string(tmp.data(), tmp.size());
	}

	void inline_binary(const char *data, size_t len, bool &first)
	{
		size_t out_len = 0;
		char *b64 = diana__base64_encode(reinterpret_cast<const uint8_t *>(data), len, &out_len);
		if (!b64)
			throw std::bad_alloc();
		sep(first);
		key("InlineBinary");
		b_.putc('"');
		try {
			b_.put(b64, out_len);
		} catch (...) {
			free(b64);
			throw;
		}
		free(b64);
		b_.putc('"');
	}

	void member(const Element &el, const char *charset, bool &first)
	{
		char k[9];
		snprintf(k, sizeof k, "%08X", el.tag);
		sep(first);
		key(k);
		b_.putc('{');
		depth_++;
		bool f = true;
		sep(f);
		key("vr");
		str(vr_str(el.vr));
		body(el, charset, f);
		depth_--;
		nl();
		b_.putc('}');
	}

	void body(const Element &el, const char *charset, bool &first)
	{
		if (el.vr == VR_SQ) {
			if (el.items.empty())
				return;
			sep(first);
			key("Value");
			b_.putc('[');
			depth_++;
			for (size_t i = 0; i < el.items.size(); i++) {
				if (i)
					b_.putc(',');
				nl();
				std::string cs_store;
				const char *cs = item_charset(el.items[i], cs_store);
				dataset({}, el.items[i].elems, cs ? cs : charset);
			}
			depth_--;
			nl();
			b_.putc(']');
			return;
		}
		if (el.encapsulated) {
			Buf enc;
			for (const std::string &f : el.frags) {
				enc.u16(0xFFFE, false);
				enc.u16(0xE000, false);
				enc.u32(static_cast<uint32_t>(f.size()), false);
				enc.put(f.data(), f.size());
			}
			if (no_bulk_ && enc.size() > BULK_LIMIT)
				return;
			inline_binary(enc.data(), enc.size(), first);
			return;
		}
		if (vr_is_binary(el.vr)) {
			if (el.value.empty() || (no_bulk_ && el.value.size() > BULK_LIMIT))
				return;
			inline_binary(el.value.data(), el.value.size(), first);
			return;
		}
		if (el.value.empty())
			return;
		if (vr_is_numeric(el.vr) || el.vr == VR_AT) {
			value_array(number_tokens(el), first);
			return;
		}
		std::string text = element_text(el, charset);
		std::vector<std::string> parts;
		if (vr_multi_valued(el.vr))
			parts = split_values(text);
		else
			parts.push_back(text);
		for (std::string &p : parts)
			p = trim_value(p, el.vr);
		if (parts.size() == 1 && parts[0].empty())
			return;
		std::vector<std::string> tokens;
		tokens.reserve(parts.size());
		for (const std::string &p : parts) {
			if (p.empty()) {
				tokens.emplace_back("null");
			} else if (el.vr == VR_PN) {
				tokens.push_back(pn_token(p));
			} else if (el.vr == VR_IS || el.vr == VR_DS) {
				tokens.push_back(number_string(el, p));
			} else {
				tokens.push_back(quoted(p));
			}
		}
		value_array(tokens, first);
	}

	std::string number_string(const Element &el, const std::string &p)
	{
		std::string v = p;
		if (!v.empty() && v[0] == '+')
			v.erase(0, 1);
		bool ok = el.vr == VR_IS ? valid_is(p) : valid_ds(p);
		if (ok) {
			if (el.vr == VR_IS) {
				long long n = 0;
				auto r = std::from_chars(v.data(), v.data() + v.size(), n);
				if (r.ec == std::errc() && r.ptr == v.data() + v.size())
					return std::to_string(n);
			} else {
				double d = 0;
				auto r = std::from_chars(v.data(), v.data() + v.size(), d);
				if (r.ec == std::errc() && r.ptr == v.data() + v.size() && std::isfinite(d))
					return fmt_double(d);
			}
		}
		if (!ds_.lenient)
			fail(DIANA_EDICOM, "element (%04X,%04X) holds an invalid %s value",
			     el.tag >> 16, el.tag & 0xFFFF, vr_str(el.vr).c_str());
		return quoted(p); /* lenient dataset: keep the text */
	}

	std::string pn_token(const std::string &p)
	{
		static const char *names[3] = { "Alphabetic", "Ideographic", "Phonetic" };
		std::string groups[3];
		size_t start = 0;
		for (int g = 0; g < 3; g++) {
			size_t eq = g < 2 ? p.find('=', start) : std::string::npos;
			if (eq == std::string::npos) {
				groups[g] = p.substr(start);
				break;
			}
			groups[g] = p.substr(start, eq - start);
			start = eq + 1;
		}
		std::string out = "{";
		bool any = false;
		for (int g = 0; g < 3; g++) {
			if (groups[g].empty())
				continue;
			if (any)
				out += ',';
			if (pretty_) {
				out += '\n';
				out.append(static_cast<size_t>(depth_ + 2) * 2, ' ');
			}
			out += '"';
			out += names[g];
			out += pretty_ ? "\": " : "\":";
			out += quoted(groups[g]);
			any = true;
		}
		if (!any)
			return "null";
		if (pretty_) {
			out += '\n';
			out.append(static_cast<size_t>(depth_ + 1) * 2, ' ');
		}
		out += '}';
		return out;
	}

	std::vector<std::string> number_tokens(const Element &el)
	{
		std::vector<std::string> t;
		unsigned sz = el.vr == VR_AT ? 4 : vr_word_size(el.vr);
		const char *p = el.value.data();
		size_t n = el.value.size() / sz;
		t.reserve(n);
		const int64_t big = int64_t(1) << 53;
		for (size_t i = 0; i < n; i++, p += sz) {
			switch (el.vr) {
			case VR_US: t.push_back(std::to_string(load_le<uint16_t>(p))); break;
			case VR_SS: t.push_back(std::to_string(load_le<int16_t>(p))); break;
			case VR_UL: t.push_back(std::to_string(load_le<uint32_t>(p))); break;
			case VR_SL: t.push_back(std::to_string(load_le<int32_t>(p))); break;
			case VR_UV: {
				uint64_t v = load_le<uint64_t>(p);
				std::string s = std::to_string(v);
				t.push_back(v > static_cast<uint64_t>(big) ? quoted(s) : s);
				break;
			}
			case VR_SV: {
				int64_t v = load_le<int64_t>(p);
				std::string s = std::to_string(v);
				t.push_back(v > big || v < -big ? quoted(s) : s);
				break;
			}
			case VR_FL: {
				float f = load_le<float>(p);
				std::string s = fmt_double(static_cast<double>(f));
				t.push_back(std::isfinite(f) ? s : quoted(s));
				break;
			}
			case VR_FD: {
				double d = load_le<double>(p);
				std::string s = fmt_double(d);
				t.push_back(std::isfinite(d) ? s : quoted(s));
				break;
			}
			case VR_AT: {
				char buf[16];
				snprintf(buf, sizeof buf, "\"%04X%04X\"", load_le<uint16_t>(p), load_le<uint16_t>(p + 2));
				t.emplace_back(buf);
				break;
			}
			default:
				break;
			}
		}
		return t;
	}

	Buf &b_;
	const Dataset &ds_;
	bool pretty_, no_bulk_;
	int depth_ = 0;
};

/* ------------------------------------------------------------------------ */
/* import                                                                    */
/* ------------------------------------------------------------------------ */

struct CJsonFree {
	cJSON *p;
	~CJsonFree() { cJSON_Delete(p); }
};

[[noreturn]] void bad(uint32_t tag, const char *what)
{
	fail(DIANA_EDICOM, "not DICOM JSON: element %08X: %s", tag, what);
}

bool parse_hex(const char *s, size_t n, uint32_t *out)
{
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return false;
		v = (v << 4) | static_cast<uint32_t>(d);
	}
	*out = v;
	return true;
}

bool is_integral(double d, double lo, double hi)
{
	return std::isfinite(d) && d == std::floor(d) && d >= lo && d <= hi;
}

std::string ds_from_double(double d)
{
	std::string s = fmt_double(d);
	for (int prec = 16; s.size() > 16 && prec > 0; prec--) {
		char buf[64];
		auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::general, prec);
		s.assign(buf, r.ptr);
	}
	return s;
}

class Importer {
public:
	bool non_ascii = false;
	bool invalid_numbers = false;

	void dataset(const cJSON *obj, Item &out, std::vector<Element> *meta)
	{
		if (!cJSON_IsObject(obj))
			fail(DIANA_EDICOM, "not DICOM JSON: a dataset must be a JSON object");
		for (const cJSON *c = obj->child; c; c = c->next) {
			uint32_t tag;
			if (!c->string || strlen(c->string) != 8 || !parse_hex(c->string, 8, &tag))
				fail(DIANA_EDICOM, "not DICOM JSON: member names must be 8 hexadecimal digits");
			Element el;
			el.tag = tag;
			element(c, el);
			if (meta && (tag >> 16) == 0x0002) {
				Item m;
				m.elems = std::move(*meta);
				bool ok = m.insert(std::move(el));
				*meta = std::move(m.elems);
				if (!ok)
					bad(tag, "duplicate element");
				continue;
			}
			if ((tag >> 16) == 0xFFFE)
				bad(tag, "item tags are not elements");
			if (!out.insert(std::move(el)))
				bad(tag, "duplicate element");
		}
	}

private:
	void element(const cJSON *c, Element &el)
	{
		uint32_t tag = el.tag;
		if (!cJSON_IsObject(c))
			bad(tag, "value must be an object");
		const cJSON *vr = nullptr, *value = nullptr, *inline_bin = nullptr, *bulk = nullptr;
		for (const cJSON *m = c->child; m; m = m->next) {
			if (!m->string)
				bad(tag, "unnamed member");
			if (!strcmp(m->string, "vr"))
				vr = m;
			else if (!strcmp(m->string, "Value"))
				value = m;
			else if (!strcmp(m->string, "InlineBinary"))
				inline_bin = m;
			else if (!strcmp(m->string, "BulkDataURI"))
				bulk = m;
			else
				bad(tag, "unknown member");
		}
		if (!cJSON_IsString(vr) || strlen(vr->valuestring) != 2)
			bad(tag, "missing or invalid \"vr\"");
		el.vr = vr2(vr->valuestring[0], vr->valuestring[1]);
		if (!vr_known(el.vr))
			bad(tag, "unknown VR");
		if ((value != nullptr) + (inline_bin != nullptr) + (bulk != nullptr) > 1)
			bad(tag, "more than one of Value, InlineBinary, BulkDataURI");
		if (bulk && !cJSON_IsString(bulk))
			bad(tag, "BulkDataURI must be a string");
		if (vr_is_binary(el.vr)) {
			if (value)
				bad(tag, "binary VR with a Value member");
			if (inline_bin)
				binary(inline_bin, el);
			return;
		}
		if (inline_bin)
			bad(tag, "InlineBinary on a non-binary VR");
		if (bulk)
			return; /* not fetched: the element stays empty */
		if (!value)
			return;
		if (!cJSON_IsArray(value))
			bad(tag, "Value must be an array");
		if (el.vr == VR_SQ) {
			el.undef_len = true;
			for (const cJSON *it = value->child; it; it = it->next) {
				Item item;
				item.undef_len = true;
				dataset(it, item, nullptr);
				el.items.push_back(std::move(item));
			}
			return;
		}
		if (vr_is_numeric(el.vr) || el.vr == VR_AT) {
			numbers(value, el);
			return;
		}
		strings(value, el);
	}

	void binary(const cJSON *b, Element &el)
	{
		if (!cJSON_IsString(b))
			bad(el.tag, "InlineBinary must be a string");
		uint8_t *data = nullptr;
		size_t n = 0;
		int rc = diana__base64_decode(b->valuestring, strlen(b->valuestring), &data, &n);
		if (rc == DIANA_ENOMEM)
			throw std::bad_alloc();
		if (rc < 0)
			bad(el.tag, "InlineBinary is not valid base64");
		std::string v(reinterpret_cast<const char *>(data), n);
		free(data);
		if (el.tag == TAG_PIXEL_DATA && (el.vr == VR_OB || el.vr == VR_OW) && fragments(v, el))
			return;
		el.value = std::move(v);
	}

	/* the item stream of encapsulated pixel data (offset table item, then
	 * one item per fragment, up to the end of the value) */
	static bool fragments(const std::string &v, Element &el)
	{
		const uint8_t *p = reinterpret_cast<const uint8_t *>(v.data());
		size_t n = v.size(), pos = 0;
		std::vector<std::string> frags;
		while (pos < n) {
			if (n - pos < 8)
				return false;
			uint32_t t = (static_cast<uint32_t>(le16(p + pos)) << 16) | le16(p + pos + 2);
			uint32_t l = le32(p + pos + 4);
			pos += 8;
			if (t != TAG_ITEM || l > n - pos)
				return false;
			frags.emplace_back(v.data() + pos, l);
			pos += l;
		}
		if (frags.empty())
			return false;
		el.encapsulated = true;
		el.undef_len = true;
		el.frags = std::move(frags);
		return true;
	}

	void numbers(const cJSON *arr, Element &el)
	{
		std::string &out = el.value;
		for (const cJSON *v = arr->child; v; v = v->next) {
			if (el.vr == VR_AT) {
				uint32_t t;
				if (!cJSON_IsString(v) || strlen(v->valuestring) != 8 || !parse_hex(v->valuestring, 8, &t))
					bad(el.tag, "AT values must be 8 hexadecimal digits");
				store_le<uint16_t>(out, static_cast<uint16_t>(t >> 16));
				store_le<uint16_t>(out, static_cast<uint16_t>(t & 0xFFFF));
				continue;
			}
			if ((el.vr == VR_UV || el.vr == VR_SV) && cJSON_IsString(v)) {
				const char *s = v->valuestring, *e = s + strlen(s);
				if (el.vr == VR_UV) {
					uint64_t u;
					auto r = std::from_chars(s, e, u);
					if (r.ec != std::errc() || r.ptr != e || s == e)
						bad(el.tag, "invalid UV value");
					store_le<uint64_t>(out, u);
				} else {
					int64_t i;
					auto r = std::from_chars(s, e, i);
					if (r.ec != std::errc() || r.ptr != e || s == e)
						bad(el.tag, "invalid SV value");
					store_le<int64_t>(out, i);
				}
				continue;
			}
			if ((el.vr == VR_FL || el.vr == VR_FD) && cJSON_IsString(v)) {
				double d;
				if (!strcmp(v->valuestring, "NaN"))
					d = NAN;
				else if (!strcmp(v->valuestring, "Infinity"))
					d = INFINITY;
				else if (!strcmp(v->valuestring, "-Infinity"))
					d = -INFINITY;
				else
					bad(el.tag, "FL/FD strings must be NaN, Infinity or -Infinity");
				if (el.vr == VR_FL)
					store_le<float>(out, static_cast<float>(d));
				else
					store_le<double>(out, d);
				continue;
			}
			if (!cJSON_IsNumber(v))
				bad(el.tag, "binary numbers must be JSON numbers");
			double d = v->valuedouble;
			switch (el.vr) {
			case VR_US:
				if (!is_integral(d, 0, 65535))
					bad(el.tag, "US value out of range");
				store_le<uint16_t>(out, static_cast<uint16_t>(d));
				break;
			case VR_SS:
				if (!is_integral(d, -32768, 32767))
					bad(el.tag, "SS value out of range");
				store_le<int16_t>(out, static_cast<int16_t>(d));
				break;
			case VR_UL:
				if (!is_integral(d, 0, 4294967295.0))
					bad(el.tag, "UL value out of range");
				store_le<uint32_t>(out, static_cast<uint32_t>(d));
				break;
			case VR_SL:
				if (!is_integral(d, -2147483648.0, 2147483647.0))
					bad(el.tag, "SL value out of range");
				store_le<int32_t>(out, static_cast<int32_t>(d));
				break;
			case VR_UV:
				if (!is_integral(d, 0, 9007199254740992.0))
					bad(el.tag, "UV value out of range");
				store_le<uint64_t>(out, static_cast<uint64_t>(d));
				break;
			case VR_SV:
				if (!is_integral(d, -9007199254740992.0, 9007199254740992.0))
					bad(el.tag, "SV value out of range");
				store_le<int64_t>(out, static_cast<int64_t>(d));
				break;
			case VR_FL:
				store_le<float>(out, static_cast<float>(d));
				break;
			default:
				store_le<double>(out, d);
				break;
			}
		}
	}

	std::string text(const char *s, uint32_t tag)
	{
		size_t n = strlen(s);
		if (!valid_utf8(s, n))
			bad(tag, "string is not valid UTF-8");
		for (size_t i = 0; i < n; i++)
			if (static_cast<unsigned char>(s[i]) >= 0x80)
				non_ascii = true;
		return std::string(s, n);
	}

	void strings(const cJSON *arr, Element &el)
	{
		std::vector<std::string> vals;
		for (const cJSON *v = arr->child; v; v = v->next) {
			if (cJSON_IsNull(v)) {
				vals.emplace_back();
				continue;
			}
			if (el.vr == VR_PN) {
				vals.push_back(person_name(v, el.tag));
				continue;
			}
			if ((el.vr == VR_IS || el.vr == VR_DS) && cJSON_IsNumber(v)) {
				double d = v->valuedouble;
				if (el.vr == VR_IS) {
					if (!is_integral(d, -2147483648.0, 2147483647.0))
						bad(el.tag, "IS value is not an integer in range");
					vals.push_back(std::to_string(static_cast<long long>(d)));
				} else {
					if (!std::isfinite(d))
						bad(el.tag, "DS value is not finite");
					vals.push_back(ds_from_double(d));
				}
				continue;
			}
			if (!cJSON_IsString(v))
				bad(el.tag, "string value expected");
			std::string s = text(v->valuestring, el.tag);
			if (el.vr == VR_IS || el.vr == VR_DS) {
				/* numbers as strings: what DIANA_OPEN_LENIENT datasets export */
				if (!(el.vr == VR_IS ? valid_is(s) : valid_ds(s)))
					invalid_numbers = true;
			}
			if (vr_multi_valued(el.vr) && s.find('\\') != std::string::npos)
				bad(el.tag, "a value contains the delimiter '\\'");
			vals.push_back(std::move(s));
		}
		if (!vr_multi_valued(el.vr) && vals.size() > 1)
			bad(el.tag, "VR allows a single value only");
		std::string joined;
		for (size_t i = 0; i < vals.size(); i++) {
			if (i)
				joined += '\\';
			joined += vals[i];
		}
		if (joined.size() & 1)
			joined.push_back(el.vr == VR_UI ? '\0' : ' ');
		el.value = std::move(joined);
	}

	std::string person_name(const cJSON *v, uint32_t tag)
	{
		if (!cJSON_IsObject(v))
			bad(tag, "PN values must be objects");
		std::string groups[3];
		for (const cJSON *m = v->child; m; m = m->next) {
			int g;
			if (m->string && !strcmp(m->string, "Alphabetic"))
				g = 0;
			else if (m->string && !strcmp(m->string, "Ideographic"))
				g = 1;
			else if (m->string && !strcmp(m->string, "Phonetic"))
				g = 2;
			else
				bad(tag, "unknown PN component group");
			if (!cJSON_IsString(m))
				bad(tag, "PN component groups must be strings");
			groups[g] = text(m->valuestring, tag);
			if (groups[g].find_first_of("=\\") != std::string::npos)
				bad(tag, "a PN component group contains '=' or '\\'");
		}
		int last = -1;
		for (int g = 0; g < 3; g++)
			if (!groups[g].empty())
				last = g;
		std::string s;
		for (int g = 0; g <= last; g++) {
			if (g)
				s += '=';
			s += groups[g];
		}
		return s;
	}
};

void set_utf8(Item &it)
{
	for (Element &el : it.elems) {
		if (el.tag == TAG_CHARSET) {
			el.vr = VR_CS;
			el.value = "ISO_IR 192";
		}
		for (Item &sub : el.items)
			set_utf8(sub);
	}
}

bool native_ts(const std::string &ts)
{
	return ts == TS_IMPLICIT_LE || ts == TS_EXPLICIT_LE || ts == TS_EXPLICIT_BE || ts == TS_DEFLATED_LE;
}

} // namespace

char *to_json(const Dataset &ds, uint32_t flags, size_t *len)
{
	Buf b;
	Emitter e(b, ds, flags);
	std::string cs_store;
	const char *cs = item_charset(ds.root, cs_store);
	static const std::vector<Element> none;
	e.dataset((flags & JSON_META) ? ds.meta : none, ds.root.elems, cs);
	return b.detach(len);
}

void from_json(const char *json, size_t len, Dataset &out)
{
	/* `end` is per call (cJSON_GetErrorPtr() is process-global) */
	const char *end = nullptr;
	CJsonFree doc{ cJSON_ParseWithLengthOpts(json, len, &end, 0) };
	if (!doc.p)
		fail(DIANA_EDICOM, "not valid JSON (error near byte %zu)",
		     static_cast<size_t>(end && end >= json ? end - json : 0));
	for (const char *p = end; p && p < json + len; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0')
			fail(DIANA_EDICOM, "not DICOM JSON: text after the JSON value (byte %zu)",
			     static_cast<size_t>(p - json));
	const cJSON *obj = doc.p;
	if (cJSON_IsArray(obj)) {
		if (cJSON_GetArraySize(obj) != 1)
			fail(DIANA_EDICOM, "not DICOM JSON: an array must hold exactly one dataset");
		obj = obj->child;
	}
	if (!cJSON_IsObject(obj))
		fail(DIANA_EDICOM, "not DICOM JSON: a dataset must be a JSON object");
	Importer im;
	im.dataset(obj, out.root, &out.meta);
	out.has_meta = !out.meta.empty();
	out.lenient = im.invalid_numbers;
	if (im.non_ascii) {
		set_utf8(out.root);
		Element cs;
		cs.tag = TAG_CHARSET;
		cs.vr = VR_CS;
		cs.value = "ISO_IR 192";
		if (!out.root.find(TAG_CHARSET))
			out.root.insert(std::move(cs));
	}

	/* transfer syntax: the one of the JSON's file meta when given (and
	 * writable), else Explicit VR Little Endian; encapsulated pixel data
	 * needs an encapsulated transfer syntax, which only the meta can name */
	Element *pd = out.root.find(TAG_PIXEL_DATA);
	const Element *tse = nullptr;
	for (const Element &e : out.meta)
		if (e.tag == 0x00020010)
			tse = &e;
	std::string ts = tse ? trim_value(tse->value, VR_UI) : std::string();
	Encoding enc;
	if (!ts.empty() && !ts_encoding(ts, &enc))
		fail(DIANA_EDICOM, "not DICOM JSON: unsupported transfer syntax in (0002,0010)");
	if (!ts.empty() && native_ts(ts) && pd && pd->encapsulated) {
		/* native pixel data whose bytes happen to look like items */
		Buf raw;
		for (const std::string &f : pd->frags) {
			raw.u16(0xFFFE, false);
			raw.u16(0xE000, false);
			raw.u32(static_cast<uint32_t>(f.size()), false);
			raw.put(f.data(), f.size());
		}
		pd->value.assign(raw.data(), raw.size());
		pd->frags.clear();
		pd->encapsulated = false;
		pd->undef_len = false;
	}
	bool encapsulated = pd && pd->encapsulated;
	if (!ts.empty() && !native_ts(ts) && pd && !encapsulated)
		fail(DIANA_EDICOM, "not DICOM JSON: transfer syntax needs encapsulated pixel data");
	if (ts.empty())
		ts = encapsulated ? std::string() : std::string(TS_EXPLICIT_LE);
	out.ts = ts;
	out.enc = Encoding::ExplicitLE;
	if (!ts.empty())
		ts_encoding(ts, &out.enc);
	for (Element &e : out.meta)
		if (e.tag == 0x00020010) {
			e.value = ts;
			if (e.value.size() & 1)
				e.value.push_back('\0');
		}
}

} // namespace diana_dcm
