/* libdiana - lib/dose (being written). SPDX-License-Identifier: MIT */
typedef int diana__dose_placeholder;
