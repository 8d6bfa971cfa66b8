/*
 * libdiana - DICOM writer: the model of dsmodel.h as a Part 10 file.
 *
 * Keeps the dataset's transfer syntax, the definedness of sequence and item
 * lengths, fragments of encapsulated pixel data and odd value lengths as
 * read, so that an unchanged dataset is written back byte for byte (apart
 * from a zeroed preamble and completed file meta). Group lengths
 * (gggg,0000) are recomputed.
 * SPDX-License-Identifier: MIT
 */
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include <zlib.h>

#include "../core/core.h"
#include "dsmodel.h"

namespace diana_dcm {

namespace {

/* libdiana's implementation class UID (a 2.25 UUID-derived UID) */
constexpr const char *IMPL_CLASS_UID = "2.25.181521075899651419384111595336507994547";
constexpr const char *IMPL_VERSION = "LIBDIANA_" DIANA_VERSION_STRING;

class Writer {
public:
	Writer(Buf &o, bool explicit_vr, bool be) : o_(o), explicit_(explicit_vr), be_(be) {}

	void tag(uint32_t t)
	{
		o_.u16(static_cast<uint16_t>(t >> 16), be_);
		o_.u16(static_cast<uint16_t>(t & 0xFFFF), be_);
	}

	/* writes the header; returns the offset of the 4-byte length (SIZE_MAX for short form) */
	size_t header(uint32_t t, uint16_t vr, uint32_t len)
	{
		tag(t);
		if (!explicit_) {
			size_t at = o_.size();
			o_.u32(len, be_);
			return at;
		}
		if (!vr_known(vr))
			vr = VR_UN;
		char v[2] = { static_cast<char>(vr >> 8), static_cast<char>(vr & 0xFF) };
		o_.put(v, 2);
		if (vr_long_form(vr)) {
			o_.u16(0, be_);
			size_t at = o_.size();
			o_.u32(len, be_);
			return at;
		}
		if (len > 0xFFFF)
			fail(DIANA_EDICOM, "value of element (%04X,%04X) is too long for VR %s",
			     t >> 16, t & 0xFFFF, vr_str(vr).c_str());
		o_.u16(static_cast<uint16_t>(len), be_);
		return SIZE_MAX;
	}

	void elements(const std::vector<Element> &elems)
	{
		size_t gl_at = SIZE_MAX, gl_start = 0;
		uint16_t gl_group = 0;
		for (const Element &el : elems) {
			uint16_t g = static_cast<uint16_t>(el.tag >> 16);
			if (gl_at != SIZE_MAX && g != gl_group) {
				patch_group_length(gl_at, gl_start);
				gl_at = SIZE_MAX;
			}
			if ((el.tag & 0xFFFF) == 0 && el.vr == VR_UL && el.value.size() == 4) {
				header(el.tag, VR_UL, 4);
				gl_at = o_.size();
				o_.u32(0, be_);
				gl_start = o_.size();
				gl_group = g;
				continue;
			}
			element(el);
		}
		if (gl_at != SIZE_MAX)
			patch_group_length(gl_at, gl_start);
	}

	void element(const Element &el)
	{
		if (el.vr == VR_SQ) {
			size_t at = header(el.tag, VR_SQ, el.undef_len ? UNDEFINED_LENGTH : 0);
			size_t start = o_.size();
			for (const Item &it : el.items)
				item(it);
			if (el.undef_len) {
				tag(TAG_SEQ_DELIM);
				o_.u32(0, be_);
			} else {
				patch_length(at, start, el.tag);
			}
			return;
		}
		if (el.encapsulated) {
			header(el.tag, el.vr, UNDEFINED_LENGTH);
			for (const std::string &f : el.frags) {
				if (f.size() >= UNDEFINED_LENGTH)
					fail(DIANA_EDICOM, "pixel data fragment too large");
				tag(TAG_ITEM);
				o_.u32(static_cast<uint32_t>(f.size()), be_);
				o_.put(f.data(), f.size());
			}
			tag(TAG_SEQ_DELIM);
			o_.u32(0, be_);
			return;
		}
		if (el.value.size() >= UNDEFINED_LENGTH)
			fail(DIANA_EDICOM, "value of element (%04X,%04X) too large", el.tag >> 16, el.tag & 0xFFFF);
		header(el.tag, el.vr, static_cast<uint32_t>(el.value.size()));
		unsigned ws = vr_word_size(el.vr);
		if (be_ && el.vr != VR_UN && ws > 1) {
			std::string v = el.value;
			swap_words(v, ws);
			o_.put(v.data(), v.size());
		} else {
			o_.put(el.value.data(), el.value.size());
		}
	}

	void item(const Item &it)
	{
		tag(TAG_ITEM);
		size_t at = o_.size();
		o_.u32(it.undef_len ? UNDEFINED_LENGTH : 0, be_);
		size_t start = o_.size();
		elements(it.elems);
		if (it.undef_len) {
			tag(TAG_ITEM_DELIM);
			o_.u32(0, be_);
		} else {
			patch_length(at, start, TAG_ITEM);
		}
	}

private:
	void patch_length(size_t at, size_t start, uint32_t t)
	{
		size_t len = o_.size() - start;
		if (len >= UNDEFINED_LENGTH)
			fail(DIANA_EDICOM, "element (%04X,%04X) too large for a defined length", t >> 16, t & 0xFFFF);
		o_.patch32(at, static_cast<uint32_t>(len), be_);
	}
	void patch_group_length(size_t at, size_t start)
	{
		size_t len = o_.size() - start;
		o_.patch32(at, len >= UNDEFINED_LENGTH ? 0 : static_cast<uint32_t>(len), be_);
	}

	Buf &o_;
	bool explicit_, be_;
};

std::string ui_value(const std::string &s)
{
	std::string v = s;
	if (v.size() & 1)
		v.push_back('\0');
	return v;
}

std::string trimmed(const Element *e)
{
	if (!e)
		return std::string();
	return trim_value(e->value, VR_UI);
}

void set_meta(std::vector<Element> &m, uint32_t tag, uint16_t vr, const std::string &value)
{
	Element el;
	el.tag = tag;
	el.vr = vr;
	el.value = value;
	auto it = std::lower_bound(m.begin(), m.end(), tag,
	                           [](const Element &e, uint32_t t) { return e.tag < t; });
	if (it != m.end() && it->tag == tag)
		*it = std::move(el);
	else
		m.insert(it, std::move(el));
}

void deflate_into(Buf &o, const char *p, size_t n)
{
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		throw std::bad_alloc();
	size_t done = 0;
	int rc;
	char buf[65536];
	do {
		size_t chunk = n - done > 1u << 30 ? 1u << 30 : n - done;
		zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(p + done));
		zs.avail_in = static_cast<uInt>(chunk);
		int flush = done + chunk == n ? Z_FINISH : Z_NO_FLUSH;
		do {
			zs.next_out = reinterpret_cast<Bytef *>(buf);
			zs.avail_out = sizeof buf;
			rc = deflate(&zs, flush);
			if (rc == Z_STREAM_ERROR) {
				deflateEnd(&zs);
				fail(DIANA_ERROR, "deflate failed");
			}
			try {
				o.put(buf, sizeof buf - zs.avail_out);
			} catch (...) {
				deflateEnd(&zs);
				throw;
			}
		} while (zs.avail_out == 0);
		done += chunk;
	} while (rc != Z_STREAM_END);
	deflateEnd(&zs);
	/* PS3.5 A.5: the deflated stream is padded to an even length */
	if (o.size() & 1) {
		char z = 0;
		o.put(&z, 1);
	}
}

} // namespace

std::vector<Element> build_meta(const Dataset &ds)
{
	std::vector<Element> m;
	for (const Element &e : ds.meta)
		if (e.tag != 0x00020000 && e.tag != 0x00020010)
			m.push_back(e);
	auto has = [&m](uint32_t tag) {
		for (const Element &e : m)
			if (e.tag == tag && !trim_value(e.value, e.vr).empty())
				return true;
		return false;
	};
	if (!has(0x00020001))
		set_meta(m, 0x00020001, VR_OB, std::string("\x00\x01", 2));
	/* Media Storage SOP Class/Instance UIDs: from the dataset when the meta
	 * lacks them and the dataset has both; otherwise left as they are (a
	 * minimal meta with neither is what some writers produce). */
	if (!has(0x00020002) || !has(0x00020003)) {
		std::string cls = has(0x00020002) ? std::string() : trimmed(ds.root.find(0x00080016));
		std::string inst = has(0x00020003) ? std::string() : trimmed(ds.root.find(0x00080018));
		bool ok = (has(0x00020002) || !cls.empty()) && (has(0x00020003) || !inst.empty());
		if (ok && !cls.empty())
			set_meta(m, 0x00020002, VR_UI, ui_value(cls));
		if (ok && !inst.empty())
			set_meta(m, 0x00020003, VR_UI, ui_value(inst));
	}
	set_meta(m, 0x00020010, VR_UI, ui_value(ds.ts));
	if (!has(0x00020012)) {
		set_meta(m, 0x00020012, VR_UI, ui_value(IMPL_CLASS_UID));
		std::string ver = IMPL_VERSION;
		if (ver.size() > 16)
			ver.resize(16);
		if (ver.size() & 1)
			ver.push_back(' ');
		set_meta(m, 0x00020013, VR_SH, ver);
	}
	/* group length: value patched by the writer */
	set_meta(m, 0x00020000, VR_UL, std::string(4, '\0'));
	return m;
}

char *write_part10(const Dataset &ds, size_t *len)
{
	if (ds.pixels_skipped)
		fail(DIANA_EUNSUPPORTED, "dataset was read without its pixel data (DIANA_OPEN_SKIP_PIXELS): not written");
	Encoding enc;
	if (ds.ts.empty())
		fail(DIANA_EDICOM, "encapsulated pixel data without a transfer syntax: give (0002,0010) in the JSON file meta");
	if (!ts_encoding(ds.ts, &enc))
		fail(DIANA_EDICOM, "cannot write transfer syntax of the dataset");
	std::vector<Element> meta = build_meta(ds);
	Buf o;
	o.reserve(132);
	char pre[132];
	memset(pre, 0, 128);
	memcpy(pre + 128, "DICM", 4);
	o.put(pre, sizeof pre);
	Writer mw(o, true, false);
	mw.elements(meta);
	if (enc == Encoding::DeflatedLE) {
		Buf body;
		Writer bw(body, true, false);
		bw.elements(ds.root.elems);
		deflate_into(o, body.data(), body.size());
	} else {
		Writer bw(o, enc != Encoding::ImplicitLE, enc == Encoding::ExplicitBE);
		bw.elements(ds.root.elems);
	}
	return o.detach(len);
}

} // namespace diana_dcm
