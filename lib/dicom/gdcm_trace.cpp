/*
 * libdiana - GDCM writes diagnostics to std::cerr by itself. While libdiana
 * is initialised, its trace streams go through a streambuf that forwards
 * each line to the libdiana log (debug level, domain "gdcm").
 * SPDX-License-Identifier: MIT
 */
#include <mutex>
#include <ostream>
#include <streambuf>
#include <string>

#include <gdcmTrace.h>

#include "../core/core.h"
#include "dicom.h"

namespace {

class LogBuf : public std::streambuf {
public:
	explicit LogBuf(int level) : level_(level) {}

protected:
	int_type overflow(int_type ch) override
	{
		if (ch == traits_type::eof())
			return traits_type::not_eof(ch);
		std::lock_guard<std::mutex> g(lock_);
		if (ch == '\n') {
			flush_line();
		} else if (line_.size() < 4096) {
			line_.push_back(static_cast<char>(ch));
		}
		return ch;
	}

	std::streamsize xsputn(const char *s, std::streamsize n) override
	{
		for (std::streamsize i = 0; i < n; i++)
			overflow(traits_type::to_int_type(s[i]));
		return n;
	}

	int sync() override
	{
		std::lock_guard<std::mutex> g(lock_);
		flush_line();
		return 0;
	}

private:
	void flush_line()
	{
		if (!line_.empty()) {
			diana__log(level_, "gdcm", "%s", line_.c_str());
			line_.clear();
		}
	}

	int level_;
	std::mutex lock_;
	std::string line_;
};

LogBuf *g_buf;
std::ostream *g_stream;

} // namespace

extern "C" int diana__dicom_global_init(void) noexcept
{
	try {
		if (!g_buf) {
			g_buf = new LogBuf(DIANA_LOG_DEBUG);
			g_stream = new std::ostream(g_buf);
		}
		gdcm::Trace::SetStream(*g_stream);
		gdcm::Trace::SetDebugStream(*g_stream);
		gdcm::Trace::SetWarningStream(*g_stream);
		gdcm::Trace::SetErrorStream(*g_stream);
		gdcm::Trace::DebugOff();
		gdcm::Trace::WarningOn();
		gdcm::Trace::ErrorOn();
		return 0;
	} catch (...) {
		return diana__error_oom();
	}
}

extern "C" void diana__dicom_global_shutdown(void) noexcept
{
	/* The stream objects stay alive: GDCM may still hold a reference to
	 * them from another thread's late call. Turn its output off instead of
	 * handing it back to std::cerr. */
	try {
		if (g_stream)
			g_stream->flush();
		gdcm::Trace::WarningOff();
		gdcm::Trace::ErrorOff();
	} catch (...) {
	}
}
