/*
 * libdiana - the mutation interface of lib/dicom (edit.h) over the model of
 * dsmodel.h: walk every element (file meta first, then the dataset depth
 * first) and keep, remove, empty or replace it; insert top-level elements.
 * Used by lib/deid. Values are edited in place: nothing is copied but the
 * values that change (pixel data never is).
 * SPDX-License-Identifier: MIT
 */
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/core.h"
#include "dicom.h"
#include "dsmodel.h"
#include "edit.h"

using namespace diana_dcm;



namespace {

constexpr uint32_t TAG_PRIVATE_MIN_DATA = 0x1000;

bool is_text_vr(uint16_t vr)
{
	return vr_is_string(vr);
}

/* a text value padded to even length as the VR requires */
void set_value(Element &el, const uint8_t *v, size_t n)
{
	el.value.assign(reinterpret_cast<const char *>(v), n);
	if (el.value.size() & 1) {
		if (el.vr == VR_UI)
			el.value.push_back('\0');
		else if (is_text_vr(el.vr))
			el.value.push_back(' ');
		else
			el.value.push_back('\0');
	}
}

std::string trimmed(const std::string &v)
{
	size_t b = 0, e = v.size();
	while (b < e && v[b] == ' ')
		b++;
	while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\0'))
		e--;
	return v.substr(b, e - b);
}

struct Walker {
	diana__edit_fn fn;
	void *ud;
	std::vector<uint32_t> parents;

	int elements(std::vector<Element> &elems, int depth, const std::string &inherited, bool meta)
	{
		std::string charset = inherited;
		if (!meta) {
			for (const Element &e : elems) {
				if (e.tag == TAG_CHARSET) {
					charset = trimmed(e.value);
					break;
				}
				if (e.tag > TAG_CHARSET)
					break;
			}
		}
		std::vector<bool> drop(elems.size(), false);
		bool any_drop = false;
		std::string creator, vr;
		for (size_t i = 0; i < elems.size(); i++) {
			Element &el = elems[i];
			diana__edit_element x;
			uint16_t group = static_cast<uint16_t>(el.tag >> 16), elem = static_cast<uint16_t>(el.tag);
			const char *pc = nullptr;
			if ((group & 1) && elem >= TAG_PRIVATE_MIN_DATA) {
				/* the creator of block xx of (gggg,xxyy) is (gggg,00xx), in this item */
				uint32_t ctag = (el.tag & 0xFFFF0000u) | (elem >> 8);
				for (const Element &c : elems) {
					if (c.tag == ctag) {
						creator = trimmed(c.value);
						pc = creator.c_str();
						break;
					}
					if (c.tag > ctag)
						break;
				}
			}
			vr = vr_str(el.vr);
			std::memset(&x, 0, sizeof x);
			x.tag = el.tag;
			std::memcpy(x.vr, vr.data(), std::min(vr.size(), sizeof x.vr - 1)); /* x is zeroed */
			x.depth = depth;
			x.parents = parents.empty() ? nullptr : parents.data();
			x.private_creator = pc;
			bool sq = el.vr == VR_SQ;
			if (el.deferred) { /* still in the source file: a length, no bytes */
				x.value = nullptr;
				x.length = el.src_len;
			} else if (!sq && !el.encapsulated) {
				x.value = reinterpret_cast<const uint8_t *>(el.value.data());
				x.length = el.value.size();
			}
			x.charset = charset.c_str();
			x.is_meta = meta;
			x.encapsulated = el.encapsulated;
			x.items = sq ? el.items.size() : 0;

			uint8_t *nv = nullptr;
			size_t nl = 0;
			int rc = fn(&x, &nv, &nl, ud);
			if (rc < 0) {
				free(nv);
				return rc;
			}
			switch (rc) {
			case DIANA__EDIT_KEEP:
				free(nv);
				if (sq) {
					parents.push_back(el.tag);
					for (Item &it : el.items) {
						int r = elements(it.elems, depth + 1, charset, false);
						if (r < 0) {
							parents.pop_back();
							return r;
						}
					}
					parents.pop_back();
				}
				break;
			case DIANA__EDIT_REMOVE:
				free(nv);
				drop[i] = any_drop = true;
				break;
			case DIANA__EDIT_EMPTY:
				free(nv);
				el.value.clear();
				el.deferred = false;
				el.items.clear();
				if (el.encapsulated) {
					el.encapsulated = false;
					el.undef_len = false;
					el.frags.clear();
				}
				break;
			case DIANA__EDIT_REPLACE: {
				struct Free {
					uint8_t *p;
					~Free() { free(p); }
				} f{ nv };
				if (sq || el.encapsulated)
					return diana__error_set(DIANA_EINVAL, "(%04X,%04X): a %s cannot be replaced by a value",
					                        el.tag >> 16, el.tag & 0xFFFF,
					                        sq ? "sequence" : "encapsulated value");
				if (nl > 0xFFFFFFFEu)
					return diana__error_set(DIANA_EINVAL, "(%04X,%04X): value too long", el.tag >> 16,
					                        el.tag & 0xFFFF);
				set_value(el, nv, nl);
				el.deferred = false;
				break;
			}
			default:
				free(nv);
				return diana__error_set(DIANA_EINVAL, "edit callback returned %d", rc);
			}
		}
		if (any_drop) {
			size_t w = 0;
			for (size_t r = 0; r < elems.size(); r++) {
				if (drop[r])
					continue;
				if (w != r)
					elems[w] = std::move(elems[r]);
				w++;
			}
			elems.erase(elems.begin() + static_cast<std::ptrdiff_t>(w), elems.end());
		}
		return 0;
	}
};

/* insert or replace `el` in a sorted element vector */
void put_sorted(std::vector<Element> &v, Element &&el)
{
	auto it = std::lower_bound(v.begin(), v.end(), el.tag,
	                           [](const Element &a, uint32_t t) { return a.tag < t; });
	if (it != v.end() && it->tag == el.tag)
		*it = std::move(el);
	else
		v.insert(it, std::move(el));
}

} // namespace

extern "C" int diana__dataset_edit(diana_dataset *ds, diana__edit_fn fn, void *user_data)
{
	if (!ds || !fn)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	try {
		Walker w{ fn, user_data, {} };
		int rc = w.elements(ds->d.meta, 0, std::string(), true);
		if (rc < 0)
			return rc;
		return w.elements(ds->d.root.elems, 0, std::string(), false);
	}
	DIANA_CATCH_ALL
}

extern "C" int diana__dataset_put(diana_dataset *ds, uint32_t tag, const char *vr, const uint8_t *value,
                                  size_t len)
{
	if (!ds || !vr || !vr[0] || !vr[1] || (len && !value))
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	try {
		uint16_t v = vr2(vr[0], vr[1]);
		if (!vr_known(v) || v == VR_SQ)
			return diana__error_set(DIANA_EINVAL, "(%04X,%04X): VR %.2s cannot be put", tag >> 16,
			                        tag & 0xFFFF, vr);
		if ((tag >> 16) == 0xFFFE || (tag & 0xFFFF) == 0 || tag == TAG_PIXEL_DATA)
			return diana__error_set(DIANA_EINVAL, "(%04X,%04X) cannot be put", tag >> 16, tag & 0xFFFF);
		if (len > 0xFFFFFFFEu)
			return diana__error_set(DIANA_EINVAL, "(%04X,%04X): value too long", tag >> 16, tag & 0xFFFF);
		Element el;
		el.tag = tag;
		el.vr = v;
		set_value(el, value, len);
		put_sorted((tag >> 16) == 0x0002 ? ds->d.meta : ds->d.root.elems, std::move(el));
		return 0;
	}
	DIANA_CATCH_ALL
}

extern "C" int diana__dataset_put_json(diana_dataset *ds, const char *json)
{
	if (!ds || !json)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	try {
		Dataset tmp;
		from_json(json, std::strlen(json), tmp);
		/* from_json adds a Specific Character Set for non-ASCII text: the
		 * caller's dataset keeps its own unless the JSON names one */
		bool has_charset = std::strstr(json, "\"00080005\"") != nullptr;
		for (Element &el : tmp.meta)
			put_sorted(ds->d.meta, std::move(el));
		for (Element &el : tmp.root.elems) {
			if (el.tag == TAG_CHARSET && !has_charset)
				continue;
			if (el.tag == TAG_PIXEL_DATA || (el.tag & 0xFFFF) == 0)
				return diana__error_set(DIANA_EINVAL, "(%04X,%04X) cannot be put", el.tag >> 16,
				                        el.tag & 0xFFFF);
			put_sorted(ds->d.root.elems, std::move(el));
		}
		return 0;
	}
	DIANA_CATCH_ALL
}

extern "C" int diana__dataset_put_from(diana_dataset *ds, const diana_dataset *src)
{
	if (!ds || !src)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	try {
		for (const Element &el : src->d.root.elems)
			if (el.tag == TAG_PIXEL_DATA || (el.tag & 0xFFFF) == 0 || el.deferred)
				return diana__error_set(DIANA_EINVAL, "(%04X,%04X) cannot be put", el.tag >> 16,
				                        el.tag & 0xFFFF);
		for (const Element &el : src->d.meta)
			put_sorted(ds->d.meta, Element(el));
		for (const Element &el : src->d.root.elems)
			put_sorted(ds->d.root.elems, Element(el));
		return 0;
	}
	DIANA_CATCH_ALL
}

extern "C" int diana__dataset_has(const diana_dataset *ds, uint32_t tag)
{
	if (!ds)
		return 0;
	return ((tag >> 16) == 0x0002 ? ds->d.find_meta(tag) : ds->d.root.find(tag)) != nullptr;
}

extern "C" int diana__dict_tag(const char *keyword, uint32_t *tag)
{
	if (!keyword || !tag)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	try {
		if (!dict_lookup(keyword, tag))
			return diana__error_set(DIANA_ENOTFOUND, "unknown keyword");
		return 0;
	}
	DIANA_CATCH_ALL
}

namespace {

/* the temporary file being written (an Error on failure, the diana error set) */
class TmpSink : public Sink {
public:
	explicit TmpSink(diana__atomic_file *f) : f_(f) {}
	void write(const char *p, size_t n) override
	{
		int rc = diana__atomic_write(f_, p, n);
		if (rc)
			throw Error(rc, diana_error_message());
	}
	/* deferred Pixel Data: from the input file to this one, in the kernel */
	void copy(const SourceFile &src, uint64_t off, uint64_t len) override
	{
		copy_source_to_fd(src, off, len, f_->fd);
	}

private:
	diana__atomic_file *f_;
};

} // namespace

extern "C" int diana__dataset_save_atomic(const diana_dataset *ds, const char *path, int mode)
{
	if (!ds || !path)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	try {
		/* nothing is created for a dataset that cannot be encoded */
		Part10 p10(ds->d);
		struct stat st;
		bool existed = stat(path, &st) == 0 && S_ISREG(st.st_mode);
		diana__atomic_file af;
		int rc = diana__atomic_open(&af, path);
		if (rc)
			return rc;
		struct Abort {
			diana__atomic_file *f;
			bool armed = true;
			~Abort()
			{
				if (armed)
					diana__atomic_abort(f);
			}
		} guard{ &af };
		if (existed && fchmod(af.fd, st.st_mode & 07777) < 0)
			return diana__error_errno(errno, "cannot set file mode");
		TmpSink sink(&af);
		p10.write(sink);
		if (mode == DIANA__SAVE_FSYNC) {
			guard.armed = false;
			return diana__atomic_commit(&af);
		}
		/* the disk starts on it while the caller goes on; best effort
		 * (the caller's syncfs() is what makes it durable) */
		if (mode == DIANA__SAVE_WRITEBACK)
			(void)sync_file_range(af.fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		if (close(af.fd) < 0) {
			af.fd = -1;
			return diana__error_errno(errno, "cannot close file");
		}
		af.fd = -1;
		if (rename(af.tmp_path, af.path) < 0)
			return diana__error_errno(errno, "cannot rename file into place");
		free(af.tmp_path);
		free(af.path);
		af.tmp_path = af.path = nullptr;
		guard.armed = false;
		return 0;
	}
	DIANA_CATCH_ALL
}
