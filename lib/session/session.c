/* libdiana - lib/session (being written). SPDX-License-Identifier: MIT */
typedef int diana__session_placeholder;
