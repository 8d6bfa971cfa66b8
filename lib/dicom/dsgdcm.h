/*
 * libdiana - how lib/dicom uses GDCM's encoding templates (internal, C++).
 * Include first, before any other header, in the files that read or write
 * DICOM through GDCM (dsread.cpp, dswrite.cpp).
 *
 * GDCM's element, item, sequence and value readers and writers are
 * templates over a byte swapper (gdcmDataSet.txx, gdcmExplicitDataElement.txx,
 * gdcmImplicitDataElement.txx, gdcmItem.h, gdcmSequenceOfItems.h, ...).
 * libdiana instantiates them with its own swapper types SwapLE and SwapBE
 * (which behave as gdcm::SwapperNoOp and gdcm::SwapperDoOp), so that:
 *  - every instantiation is libdiana's own (the mangled names carry the
 *    swapper type: no clash with the instantiations inside libgdcm);
 *  - they are compiled here with NDEBUG, so that none of GDCM's assert()s
 *    can abort the host process on malformed input (Debian's libgdcm is
 *    built with assertions on), and with GDCM_ALWAYS_TRACE_MACRO, so that
 *    GDCM's warning and error macros still report the repairs it makes
 *    (gdcm_trace.cpp captures them);
 *  - a few member templates can be specialised for them (below): reading a
 *    tag or a value length is where the reader checks a length against the
 *    bytes that remain, *before* GDCM allocates it, and writing a value
 *    keeps odd lengths as read.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DSGDCM_H
#define DIANA_DSGDCM_H

#if defined(GDCMTRACE_H) || defined(GDCMSWAPPER_H)
#error "dsgdcm.h must be included before any GDCM header"
#endif

#ifndef NDEBUG
#define NDEBUG 1
#endif
#define GDCM_ALWAYS_TRACE_MACRO 1

#include <cassert>
#include <istream>
#include <ostream>
#include <sstream>
#include <string>
#include <typeinfo>

#include <gdcmByteValue.h>
#include <gdcmDataElement.h>
#include <gdcmDataSet.h>
#include <gdcmExplicitDataElement.h>
#include <gdcmFileMetaInformation.h>
#include <gdcmFragment.h>
#include <gdcmImplicitDataElement.h>
#include <gdcmItem.h>
#include <gdcmParseException.h>
#include <gdcmSequenceOfFragments.h>
#include <gdcmSequenceOfItems.h>
#include <gdcmSwapper.h>
#include <gdcmSystem.h>
#include <gdcmTag.h>
#include <gdcmTrace.h>
#include <gdcmVL.h>
#include <gdcmVR.h>

/* GDCM keeps values in host byte order after reading; the model keeps them
 * little endian. Supporting big-endian hosts would need swapping between
 * the two (and GDCM's own GDCM_WORDS_BIGENDIAN paths): not done. */
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "lib/dicom assumes a little-endian host");

namespace diana_dcm {

/** Little-endian data: as gdcm::SwapperNoOp. */
struct SwapLE : gdcm::SwapperNoOp {};
/** Big-endian data: as gdcm::SwapperDoOp. */
struct SwapBE : gdcm::SwapperDoOp {};

/**
 * A value whose bytes GDCM does not hold: a gdcm::ByteValue with only a
 * length (SetLengthOnly), pointing at bytes libdiana owns (a large value
 * read straight from the input, moved into the model afterwards) or borrows
 * (a model value being written). GDCM's own code sees its length only;
 * libdiana's specialisations of ByteValue::Write (dswrite.cpp) and the
 * converter (dsread.cpp) see the bytes. Saves GDCM's copy, and its zeroing
 * of the buffer, of pixel data.
 */
class ExternalValue : public gdcm::ByteValue {
public:
	ExternalValue(const char *p, uint32_t n) : p_(p) { SetLengthOnly(n); }
	explicit ExternalValue(std::string &&s) : own_(std::move(s))
	{
		p_ = own_.data();
		SetLengthOnly(static_cast<uint32_t>(own_.size()));
	}
	const char *data() const { return p_; }
	/** The owned bytes, moved out (once). */
	std::string take() { return std::move(own_); }

private:
	std::string own_;
	const char *p_;
};

struct SourceFile;

/* A value left in the source file (deferred Pixel Data): its length, where
 * it starts, and (when writing) the file. No bytes in memory. */
class FileValue : public ExternalValue {
public:
	FileValue(uint64_t off, uint32_t n, const SourceFile *src) : ExternalValue(nullptr, n), off_(off), src_(src) {}
	uint64_t offset() const { return off_; }
	const SourceFile *source() const { return src_; }

private:
	uint64_t off_;
	const SourceFile *src_;
};

/*
 * What a value is, by its exact type. GDCM's GetByteValue(),
 * GetSequenceOfFragments() and a dynamic_cast walk the class hierarchy and
 * compare type names across shared objects (strcmp): a tenth of the
 * instructions of reading a file went there. A typeid comparison is a
 * pointer comparison when the types match and stops at the first differing
 * character of the names otherwise. Types other than those below (none in
 * GDCM 3.0) fall back to dynamic_cast: same answers as GDCM's getters.
 */
inline const gdcm::SequenceOfItems *value_items(const gdcm::Value *v)
{
	if (!v)
		return nullptr;
	const std::type_info &t = typeid(*v);
	if (t == typeid(gdcm::SequenceOfItems))
		return static_cast<const gdcm::SequenceOfItems *>(v);
	if (t == typeid(gdcm::ByteValue) || t == typeid(ExternalValue) || t == typeid(FileValue) ||
	    t == typeid(gdcm::SequenceOfFragments))
		return nullptr;
	return dynamic_cast<const gdcm::SequenceOfItems *>(v);
}

inline const gdcm::SequenceOfFragments *value_fragments(const gdcm::Value *v)
{
	if (!v)
		return nullptr;
	const std::type_info &t = typeid(*v);
	if (t == typeid(gdcm::SequenceOfFragments))
		return static_cast<const gdcm::SequenceOfFragments *>(v);
	if (t == typeid(gdcm::ByteValue) || t == typeid(ExternalValue) || t == typeid(FileValue) ||
	    t == typeid(gdcm::SequenceOfItems))
		return nullptr;
	return dynamic_cast<const gdcm::SequenceOfFragments *>(v);
}

inline const gdcm::ByteValue *value_bytes(const gdcm::Value *v)
{
	if (!v)
		return nullptr;
	const std::type_info &t = typeid(*v);
	if (t == typeid(gdcm::ByteValue) || t == typeid(ExternalValue) || t == typeid(FileValue))
		return static_cast<const gdcm::ByteValue *>(v);
	if (t == typeid(gdcm::SequenceOfItems) || t == typeid(gdcm::SequenceOfFragments))
		return nullptr;
	return dynamic_cast<const gdcm::ByteValue *>(v);
}

/* ExternalValue (FileValue included) or nullptr, for a ByteValue */
inline const ExternalValue *value_external(const gdcm::ByteValue *v)
{
	if (!v)
		return nullptr;
	const std::type_info &t = typeid(*v);
	if (t == typeid(ExternalValue) || t == typeid(FileValue))
		return static_cast<const ExternalValue *>(v);
	if (t == typeid(gdcm::ByteValue))
		return nullptr;
	return dynamic_cast<const ExternalValue *>(v);
}

inline const FileValue *value_file(const gdcm::ByteValue *v)
{
	if (!v)
		return nullptr;
	const std::type_info &t = typeid(*v);
	if (t == typeid(FileValue))
		return static_cast<const FileValue *>(v);
	if (t == typeid(gdcm::ByteValue) || t == typeid(ExternalValue))
		return nullptr;
	return dynamic_cast<const FileValue *>(v);
}

/* A DataElement's value or nullptr, without GDCM's casts (its GetValue()
 * throws when there is none). The protected member is reached through a
 * member pointer formed in a derived class: well-defined C++. */
struct ValueFieldOf : gdcm::DataElement {
	static const gdcm::Value *get(const gdcm::DataElement &de)
	{
		return (de.*(&ValueFieldOf::ValueField)).GetPointer();
	}
};

inline const gdcm::Value *element_value(const gdcm::DataElement &de)
{
	return ValueFieldOf::get(de);
}

/**
 * Recursion (GDCM's, over nested sequences, and ours) is bounded by the
 * stack this thread has left: the public entry points open a StackScope,
 * and the recursive code calls stack_exhausted() as it goes (GDCM's reading
 * and writing through the stream buffers it calls at each level).
 */
class StackScope {
public:
	StackScope();
	~StackScope();
	StackScope(const StackScope &) = delete;
	StackScope &operator=(const StackScope &) = delete;

private:
	const char *saved_base_;
	size_t saved_budget_;
};

/** True when the recursion under the current StackScope used its budget. */
bool stack_exhausted();

} // namespace diana_dcm

namespace gdcm {

/* Reading (dsread.cpp): the reader's checks run as GDCM reads each tag and
 * each value length. */
template <> std::istream &Tag::Read<diana_dcm::SwapLE>(std::istream &is);
template <> std::istream &Tag::Read<diana_dcm::SwapBE>(std::istream &is);
template <> std::istream &VL::Read<diana_dcm::SwapLE>(std::istream &is);
template <> std::istream &VL::Read<diana_dcm::SwapBE>(std::istream &is);
template <> std::istream &VL::Read16<diana_dcm::SwapLE>(std::istream &is);
template <> std::istream &VL::Read16<diana_dcm::SwapBE>(std::istream &is);

/* Writing (dswrite.cpp): a value is written with its length as it is (GDCM
 * would add a padding byte to an odd length), and without copying it first
 * when no byte swapping is needed. */
template <> const std::ostream &VL::Write<diana_dcm::SwapLE>(std::ostream &os) const;
template <> const std::ostream &VL::Write<diana_dcm::SwapBE>(std::ostream &os) const;
template <> const std::ostream &VL::Write16<diana_dcm::SwapLE>(std::ostream &os) const;
template <> const std::ostream &VL::Write16<diana_dcm::SwapBE>(std::ostream &os) const;
template <> std::ostream const &ByteValue::Write<diana_dcm::SwapLE, uint8_t>(std::ostream &os) const;
template <> std::ostream const &ByteValue::Write<diana_dcm::SwapLE, uint16_t>(std::ostream &os) const;
template <> std::ostream const &ByteValue::Write<diana_dcm::SwapLE, uint32_t>(std::ostream &os) const;
template <> std::ostream const &ByteValue::Write<diana_dcm::SwapLE, uint64_t>(std::ostream &os) const;
template <> std::ostream const &ByteValue::Write<diana_dcm::SwapBE, uint8_t>(std::ostream &os) const;
template <> std::ostream const &ByteValue::Write<diana_dcm::SwapBE, uint16_t>(std::ostream &os) const;
template <> std::ostream const &ByteValue::Write<diana_dcm::SwapBE, uint32_t>(std::ostream &os) const;
template <> std::ostream const &ByteValue::Write<diana_dcm::SwapBE, uint64_t>(std::ostream &os) const;

} // namespace gdcm

#endif /* DIANA_DSGDCM_H */
