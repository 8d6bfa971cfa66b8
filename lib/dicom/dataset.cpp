/*
 * libdiana - public dataset API (include/diana/dataset.h) over the model of
 * dsmodel.h: open, get, foreach, JSON, save.
 * SPDX-License-Identifier: MIT
 */
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/core.h"
#include "dicom.h"
#include "dsmodel.h"

using namespace diana_dcm;



namespace {

constexpr uint32_t OPEN_FLAGS = DIANA_OPEN_LENIENT | DIANA_OPEN_SKIP_PIXELS;
constexpr uint32_t JSON_FLAGS = DIANA_JSON_PRETTY | DIANA_JSON_NO_BULK | DIANA_JSON_META;

int read_options(const diana_dataset_options *opts, ParseOptions *po, uint64_t *max_size)
{
	*max_size = 0;
	if (!opts)
		return 0;
	int rc = diana__check_version(opts->version, DIANA_DATASET_OPTIONS_VERSION, "diana_dataset_options");
	if (rc)
		return rc;
	if (opts->flags & ~OPEN_FLAGS)
		return diana__error_set(DIANA_EINVAL, "unknown flags in diana_dataset_options");
	po->lenient = opts->flags & DIANA_OPEN_LENIENT;
	po->skip_pixels = opts->flags & DIANA_OPEN_SKIP_PIXELS;
	po->max_inflated = opts->max_size;
	*max_size = opts->max_size;
	return 0;
}

/* A regular file is read as GDCM asks for bytes (with
 * DIANA_OPEN_SKIP_PIXELS: nothing after the start of Pixel Data); anything
 * else (a pipe) is read whole first. With po.defer_pixels, a regular file
 * stays open in out.src while its Pixel Data is deferred. */
int open_file(const char *path, uint64_t max_size, const ParseOptions &po, Dataset &out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return diana__error_errno(errno, "cannot open file");
	struct Closer {
		int fd;
		~Closer() { close(fd); }
	} c{ fd };
	struct stat st;
	if (fstat(fd, &st) < 0)
		return diana__error_errno(errno, "cannot stat file");
	if (S_ISDIR(st.st_mode))
		return diana__error_set(DIANA_EIO, "is a directory");
	if (S_ISREG(st.st_mode)) {
		if (max_size && static_cast<uint64_t>(st.st_size) > max_size)
			return diana__error_set(DIANA_EINVAL, "file larger than the limit of %llu bytes",
			                        static_cast<unsigned long long>(max_size));
		parse_file(fd, static_cast<uint64_t>(st.st_size), po, out);
		for (const Element &el : out.root.elems) {
			if (!el.deferred)
				continue;
			int keep = fcntl(fd, F_DUPFD_CLOEXEC, 0);
			if (keep < 0) { /* no descriptor to spare: read the value now */
				out.src = std::make_shared<SourceFile>(fd, static_cast<uint64_t>(st.st_size));
				load_deferred(out);
				out.src->fd = -1; /* closed by the Closer */
				out.src.reset();
				break;
			}
			out.src = std::make_shared<SourceFile>(keep, static_cast<uint64_t>(st.st_size));
			break;
		}
		return 0;
	}
	uint8_t *buf = nullptr;
	size_t len = 0;
	int rc = diana__file_read(path, max_size, &buf, &len);
	if (rc)
		return rc;
	struct Free {
		uint8_t *p;
		~Free() { free(p); }
	} f{ buf };
	parse_memory(buf, len, po, out);
	return 0;
}

} // namespace

namespace diana_dcm {
SourceFile::~SourceFile()
{
	if (fd >= 0)
		close(fd);
}
} // namespace diana_dcm

extern "C" int diana_dataset_options_init(diana_dataset_options *opts, uint32_t version) noexcept
{
	if (!opts)
		return diana__error_set(DIANA_EINVAL, "NULL options");
	int rc = diana__check_version(version, DIANA_DATASET_OPTIONS_VERSION, "diana_dataset_options");
	if (rc)
		return rc;
	opts->version = version;
	opts->flags = 0;
	opts->max_size = 0;
	return 0;
}

extern "C" int diana_dataset_open(diana_dataset **out, const char *path,
                                  const diana_dataset_options *opts) noexcept
{
	try {
		if (out)
			*out = nullptr;
		if (!out || !path)
			return diana__error_set(DIANA_EINVAL, "NULL argument");
		ParseOptions po;
		uint64_t max_size;
		int rc = read_options(opts, &po, &max_size);
		if (rc)
			return rc;
		auto *ds = new diana_dataset();
		std::unique_ptr<diana_dataset> guard(ds);
		rc = open_file(path, max_size, po, ds->d);
		if (rc)
			return rc;
		*out = guard.release();
		return 0;
	}
	DIANA_CATCH_ALL
}

/* lib/deid's open (edit.h): strict, Pixel Data deferred */
extern "C" int diana__dataset_open_deferred(diana_dataset **out, const char *path)
{
	try {
		if (out)
			*out = nullptr;
		if (!out || !path)
			return diana__error_set(DIANA_EINVAL, "NULL argument");
		ParseOptions po;
		po.defer_pixels = true;
		auto *ds = new diana_dataset();
		std::unique_ptr<diana_dataset> guard(ds);
		int rc = open_file(path, 0, po, ds->d);
		if (rc)
			return rc;
		*out = guard.release();
		return 0;
	}
	DIANA_CATCH_ALL
}

extern "C" int diana_dataset_open_memory(diana_dataset **out, const uint8_t *data, size_t len,
                                         const diana_dataset_options *opts) noexcept
{
	try {
		if (out)
			*out = nullptr;
		if (!out || (!data && len))
			return diana__error_set(DIANA_EINVAL, "NULL argument");
		ParseOptions po;
		uint64_t max_size;
		int rc = read_options(opts, &po, &max_size);
		if (rc)
			return rc;
		if (max_size && len > max_size)
			return diana__error_set(DIANA_EINVAL, "input larger than the limit of %llu bytes",
			                        static_cast<unsigned long long>(max_size));
		if (!len)
			return diana__error_set(DIANA_EDICOM, "input is empty");
		std::unique_ptr<diana_dataset> ds(new diana_dataset());
		parse_memory(data, len, po, ds->d);
		*out = ds.release();
		return 0;
	}
	DIANA_CATCH_ALL
}

extern "C" int diana_dataset_from_json(diana_dataset **out, const char *json, size_t len) noexcept
{
	try {
		if (out)
			*out = nullptr;
		if (!out || !json)
			return diana__error_set(DIANA_EINVAL, "NULL argument");
		if (!len)
			len = strlen(json);
		std::unique_ptr<diana_dataset> ds(new diana_dataset());
		from_json(json, len, ds->d);
		*out = ds.release();
		return 0;
	}
	DIANA_CATCH_ALL
}

extern "C" void diana_dataset_free(diana_dataset *ds) noexcept
{
	delete ds;
}

namespace {

struct Found {
	const Element *el = nullptr; /* nullptr: not found (missing: its tag, item) */
	std::string charset;
	bool has_charset = false;
	uint32_t missing = 0;
	size_t missing_item = SIZE_MAX; /* an item index, or SIZE_MAX: the element */
};

/* "not found" is an answer, not an exception (cheap: callers ask for
 * optional elements on the hot path of de-identification) */
int not_found(const Found &f)
{
	if (f.missing_item != SIZE_MAX)
		return diana__error_set(DIANA_ENOTFOUND, "item %zu of sequence (%04X,%04X) not found", f.missing_item,
		                        f.missing >> 16, f.missing & 0xFFFF);
	return diana__error_set(DIANA_ENOTFOUND, "element (%04X,%04X) not found", f.missing >> 16,
	                        f.missing & 0xFFFF);
}

bool hex4(const char *s, uint16_t *v)
{
	uint16_t r = 0;
	for (int i = 0; i < 4; i++) {
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
		r = static_cast<uint16_t>((r << 4) | d);
	}
	*v = r;
	return true;
}

struct Segment {
	uint32_t tag;
	bool has_index;
	size_t index;
};

std::vector<Segment> parse_key(const char *key)
{
	std::vector<Segment> segs;
	const char *p = key;
	if (!*p)
		fail(DIANA_EINVAL, "empty key");
	for (;;) {
		const char *end = p;
		while (*end && *end != '.' && *end != '[')
			end++;
		std::string name(p, static_cast<size_t>(end - p));
		Segment s{ 0, false, 0 };
		uint16_t g, e;
		if (name.size() == 11 && name[0] == '(' && name[5] == ',' && name[10] == ')' &&
		    hex4(&name[1], &g) && hex4(&name[6], &e)) {
			s.tag = (static_cast<uint32_t>(g) << 16) | e;
		} else if (name.size() == 9 && name[4] == ',' && hex4(&name[0], &g) && hex4(&name[5], &e)) {
			s.tag = (static_cast<uint32_t>(g) << 16) | e;
		} else if (name.size() == 8 && hex4(&name[0], &g) && hex4(&name[4], &e)) {
			s.tag = (static_cast<uint32_t>(g) << 16) | e;
		} else {
			bool ok = !name.empty();
			for (char c : name)
				if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
					ok = false;
			if (!ok)
				fail(DIANA_EINVAL, "invalid key syntax");
			if (!dict_lookup(name.c_str(), &s.tag))
				fail(DIANA_EINVAL, "unknown keyword in key");
		}
		p = end;
		if (*p == '[') {
			p++;
			if (*p < '0' || *p > '9')
				fail(DIANA_EINVAL, "invalid item index in key");
			size_t idx = 0;
			while (*p >= '0' && *p <= '9') {
				if (idx > 100000000)
					fail(DIANA_EINVAL, "item index too large in key");
				idx = idx * 10 + static_cast<size_t>(*p - '0');
				p++;
			}
			if (*p != ']')
				fail(DIANA_EINVAL, "invalid item index in key");
			p++;
			s.has_index = true;
			s.index = idx;
		}
		segs.push_back(s);
		if (!*p)
			break;
		if (*p != '.' || !p[1])
			fail(DIANA_EINVAL, "invalid key syntax");
		p++;
	}
	if (segs.back().has_index)
		fail(DIANA_EINVAL, "item index on the last element of a key");
	return segs;
}

Found resolve(const Dataset &ds, const char *key)
{
	std::vector<Segment> segs = parse_key(key);
	Found f;
	const Item *cur = &ds.root;
	std::string store;
	if (const char *cs = item_charset(ds.root, store)) {
		f.charset = cs;
		f.has_charset = true;
	}
	for (size_t i = 0; i < segs.size(); i++) {
		const Segment &s = segs[i];
		const Element *el = (i == 0 && (s.tag >> 16) == 0x0002) ? ds.find_meta(s.tag) : cur->find(s.tag);
		if (!el) {
			f.missing = s.tag;
			return f;
		}
		if (i + 1 == segs.size()) {
			f.el = el;
			break;
		}
		if (el->vr != VR_SQ)
			fail(DIANA_EINVAL, "element (%04X,%04X) in key is not a sequence", s.tag >> 16, s.tag & 0xFFFF);
		size_t idx = s.has_index ? s.index : 0;
		if (idx >= el->items.size()) {
			f.missing = s.tag;
			f.missing_item = idx;
			return f;
		}
		cur = &el->items[idx];
		if (const char *cs = item_charset(*cur, store)) {
			f.charset = cs;
			f.has_charset = true;
		}
	}
	return f;
}

char *dup_out(const std::string &s)
{
	char *p = static_cast<char *>(malloc(s.size() + 1));
	if (!p)
		throw std::bad_alloc();
	memcpy(p, s.data(), s.size());
	p[s.size()] = 0;
	return p;
}

} // namespace

extern "C" int diana_dataset_get(const diana_dataset *ds, const char *key, char **out) noexcept
{
	try {
		if (out)
			*out = nullptr;
		if (!ds || !key || !out)
			return diana__error_set(DIANA_EINVAL, "NULL argument");
		Found f = resolve(ds->d, key);
		if (!f.el)
			return not_found(f);
		if (f.el->deferred)
			load_deferred(ds->d);
		const Element &el = *f.el;
		if (el.vr == VR_SQ)
			return diana__error_set(DIANA_EUNSUPPORTED, "element (%04X,%04X) is a sequence",
			                        el.tag >> 16, el.tag & 0xFFFF);
		if (el.encapsulated || vr_is_binary(el.vr))
			return diana__error_set(DIANA_EUNSUPPORTED,
			                        "element (%04X,%04X) has binary VR %s: use diana_dataset_get_bytes()",
			                        el.tag >> 16, el.tag & 0xFFFF, vr_str(el.vr).c_str());
		std::string text;
		if (vr_is_numeric(el.vr) || el.vr == VR_AT) {
			text = element_numbers_text(el);
		} else {
			std::string raw = element_text(el, f.has_charset ? f.charset.c_str() : nullptr);
			if (vr_multi_valued(el.vr)) {
				std::vector<std::string> parts = split_values(raw);
				for (size_t i = 0; i < parts.size(); i++) {
					if (i)
						text += '\\';
					text += trim_value(parts[i], el.vr);
				}
			} else {
				text = trim_value(raw, el.vr);
			}
		}
		*out = dup_out(text);
		return 0;
	}
	DIANA_CATCH_ALL
}

extern "C" int diana_dataset_get_bytes(const diana_dataset *ds, const char *key, uint8_t **out,
                                       size_t *len) noexcept
{
	try {
		if (out)
			*out = nullptr;
		if (len)
			*len = 0;
		if (!ds || !key || !out || !len)
			return diana__error_set(DIANA_EINVAL, "NULL argument");
		Found f = resolve(ds->d, key);
		if (!f.el)
			return not_found(f);
		if (f.el->deferred)
			load_deferred(ds->d);
		const Element &el = *f.el;
		if (el.vr == VR_SQ)
			return diana__error_set(DIANA_EUNSUPPORTED, "element (%04X,%04X) is a sequence",
			                        el.tag >> 16, el.tag & 0xFFFF);
		if (el.encapsulated)
			return diana__error_set(DIANA_EUNSUPPORTED, "encapsulated pixel data: fragments are not joined");
		if (el.value.empty())
			return 0;
		uint8_t *p = static_cast<uint8_t *>(malloc(el.value.size()));
		if (!p)
			throw std::bad_alloc();
		memcpy(p, el.value.data(), el.value.size());
		*out = p;
		*len = el.value.size();
		return 0;
	}
	DIANA_CATCH_ALL
}

namespace {

uint32_t value_multiplicity(const Element &el, const char *charset)
{
	if (el.vr == VR_SQ)
		return static_cast<uint32_t>(el.items.size());
	if (el.encapsulated)
		return 1;
	if (el.value.empty())
		return 0;
	if (vr_is_binary(el.vr))
		return 1;
	if (el.vr == VR_AT)
		return static_cast<uint32_t>(el.value.size() / 4);
	if (vr_is_numeric(el.vr))
		return static_cast<uint32_t>(el.value.size() / vr_word_size(el.vr));
	if (trim_value(el.value, el.vr).empty())
		return 0;
	if (!vr_multi_valued(el.vr))
		return 1;
	std::string text = el.value;
	bool plain = true;
	for (unsigned char c : el.value)
		if (c >= 0x80 || c == 0x1B)
			plain = false;
	if (!plain) {
		/* in some multi-byte character sets 0x5C is not always a delimiter */
		try {
			text = element_text(el, charset);
		} catch (const Error &) {
			/* count on the raw bytes */
		}
	}
	uint32_t n = 1;
	for (char c : text)
		if (c == '\\')
			n++;
	return n;
}

struct Walker {
	diana_element_fn fn;
	void *user;
	int rc = 0;

	bool visit(const std::vector<Element> &elems, int32_t depth, const std::string &prefix,
	           const char *charset)
	{
		for (const Element &el : elems) {
			char hex[9];
			snprintf(hex, sizeof hex, "%08X", el.tag);
			std::string path = prefix + hex;
			diana_element e;
			memset(&e, 0, sizeof e);
			e.version = DIANA_ELEMENT_VERSION;
			e.tag = el.tag;
			e.vr[0] = static_cast<char>(el.vr >> 8);
			e.vr[1] = static_cast<char>(el.vr & 0xFF);
			e.vr[2] = 0;
			e.depth = depth;
			e.vm = value_multiplicity(el, charset);
			if (el.vr == VR_SQ)
				e.length = el.undef_len ? UINT64_MAX : el.sq_len;
			else if (el.encapsulated)
				e.length = UINT64_MAX;
			else
				e.length = el.value.size();
			e.keyword = dict_keyword(el.tag);
			e.path = path.c_str();
			int r = fn(&e, user);
			if (r) {
				rc = r;
				return false;
			}
			for (size_t i = 0; i < el.items.size(); i++) {
				std::string store;
				const char *cs = item_charset(el.items[i], store);
				std::string sub = path + "[" + std::to_string(i) + "].";
				if (!visit(el.items[i].elems, depth + 1, sub, cs ? cs : charset))
					return false;
			}
		}
		return true;
	}
};

} // namespace

extern "C" int diana_dataset_foreach(const diana_dataset *ds, uint32_t flags, diana_element_fn fn,
                                     void *user_data) noexcept
{
	try {
		if (!ds || !fn)
			return diana__error_set(DIANA_EINVAL, "NULL argument");
		if (flags & ~static_cast<uint32_t>(DIANA_FOREACH_META))
			return diana__error_set(DIANA_EINVAL, "unknown flags");
		load_deferred(ds->d);
		Walker w{ fn, user_data };
		std::string store;
		const char *cs = item_charset(ds->d.root, store);
		bool done = true;
		if (flags & DIANA_FOREACH_META)
			done = w.visit(ds->d.meta, 0, "", cs);
		if (done)
			done = w.visit(ds->d.root.elems, 0, "", cs);
		if (done)
			return 0;
		if (w.rc < 0)
			return diana__error_set(w.rc, "the element callback stopped the walk");
		return diana__error_set(DIANA_EUSER, "the element callback stopped the walk");
	}
	DIANA_CATCH_ALL
}

extern "C" int diana_dataset_to_json(const diana_dataset *ds, uint32_t flags, char **out) noexcept
{
	try {
		if (out)
			*out = nullptr;
		if (!ds || !out)
			return diana__error_set(DIANA_EINVAL, "NULL argument");
		if (flags & ~JSON_FLAGS)
			return diana__error_set(DIANA_EINVAL, "unknown flags");
		size_t len;
		load_deferred(ds->d);
		*out = to_json(ds->d, flags, &len);
		return 0;
	}
	DIANA_CATCH_ALL
}

extern "C" int diana_dataset_save_memory(const diana_dataset *ds, uint8_t **out, size_t *len) noexcept
{
	try {
		if (out)
			*out = nullptr;
		if (len)
			*len = 0;
		if (!ds || !out || !len)
			return diana__error_set(DIANA_EINVAL, "NULL argument");
		size_t n;
		load_deferred(ds->d);
		char *p = write_part10(ds->d, &n);
		*out = reinterpret_cast<uint8_t *>(p);
		*len = n;
		return 0;
	}
	DIANA_CATCH_ALL
}

namespace {

/* the file being written (an Error on failure, the diana error set) */
class AtomicSink : public Sink {
public:
	explicit AtomicSink(diana__atomic_file *f) : f_(f) {}
	void write(const char *p, size_t n) override
	{
		int rc = diana__atomic_write(f_, p, n);
		if (rc)
			throw Error(rc, diana_error_message());
	}
	void copy(const SourceFile &src, uint64_t off, uint64_t len) override
	{
		copy_source_to_fd(src, off, len, f_->fd);
	}

private:
	diana__atomic_file *f_;
};

} // namespace

extern "C" int diana_dataset_save(const diana_dataset *ds, const char *path) noexcept
{
	try {
		if (!ds || !path)
			return diana__error_set(DIANA_EINVAL, "NULL argument");
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
		AtomicSink sink(&af);
		p10.write(sink);
		guard.armed = false;
		return diana__atomic_commit(&af);
	}
	DIANA_CATCH_ALL
}
