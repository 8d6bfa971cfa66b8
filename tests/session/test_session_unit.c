/*
 * Unit tests of lib/session's shared parts (no server): URI parsing and
 * redaction, query keys (names, tags, VRs, identifiers as datasets),
 * answers from Orthanc's tag/string JSON, DICOM matching, and the public
 * entry points' argument checks.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <diana/diana.h>

#include "session/session.h"

static void setup(void)
{
	cr_assert_eq(diana_init(), 1);
}

static void teardown(void)
{
	diana_shutdown();
}

TestSuite(session_unit, .init = setup, .fini = teardown);

Test(session_unit, uri_parse)
{
	diana__uri u;
	char *v = NULL;

	cr_assert_eq(diana__uri_parse("orthanc+http://us%40er:p%3Ass@host.example:8042/base?modality=pacs&x=1", &u), 0);
	cr_expect_str_eq(u.scheme, "orthanc+http");
	cr_expect_str_eq(u.user, "us@er");
	cr_expect_str_eq(u.password, "p:ss");
	cr_expect_str_eq(u.host, "host.example");
	cr_expect_eq(u.port, 8042);
	cr_expect_str_eq(u.path, "/base");
	cr_expect_eq(diana__uri_param(&u, "modality", &v), 0);
	cr_expect_str_eq(v, "pacs");
	free(v);
	cr_expect_eq(diana__uri_param(&u, "nope", &v), DIANA_ENOTFOUND);
	{
		static const char *const known[] = { "modality", NULL };
		cr_expect_eq(diana__uri_check_params(&u, known), DIANA_EINVAL);
		cr_expect(strstr(diana_error_message(), "'x'") != NULL, "%s", diana_error_message());
	}
	diana__uri_dispose(&u);

	cr_assert_eq(diana__uri_parse("dicom://PACS@[::1]:104?aet=ME", &u), 0);
	cr_expect_str_eq(u.user, "PACS");
	cr_expect_null(u.password);
	cr_expect_str_eq(u.host, "::1");
	cr_expect_eq(u.port, 104);
	diana__uri_dispose(&u);

	cr_expect_eq(diana__uri_parse("orthanc+http://h:0", &u), DIANA_EINVAL);
	cr_expect_eq(diana__uri_parse("orthanc+http://h:65536", &u), DIANA_EINVAL);
	cr_expect_eq(diana__uri_parse("orthanc+http://h:12ab", &u), DIANA_EINVAL);
	cr_expect_eq(diana__uri_parse("no-scheme", &u), DIANA_EINVAL);
	cr_expect_eq(diana__uri_parse("http://u:p%zz@h:1", &u), DIANA_EINVAL);
	cr_expect(strstr(diana_error_message(), "p%zz") == NULL, "the password is not echoed");
	cr_expect_eq(diana__uri_parse("http://h:1/a b", &u), DIANA_EINVAL);
}

Test(session_unit, uri_redacted)
{
	diana_session *s = NULL;
	cr_assert_eq(diana_session_open(&s, "orthanc+http://user:topsecret@127.0.0.1:8042?modality=pacs", NULL), 0);
	cr_expect_str_eq(diana_session_uri(s), "orthanc+http://127.0.0.1:8042?modality=pacs");
	cr_expect_eq(diana_session_kind(s), DIANA_SESSION_ORTHANC);
	diana_session_free(s);
	cr_assert_eq(diana_session_open(&s, "dicom://PACS@127.0.0.1:104?aet=ME", NULL), 0);
	cr_expect_str_eq(diana_session_uri(s), "dicom://127.0.0.1:104?aet=ME");
	cr_expect_eq(diana_session_kind(s), DIANA_SESSION_DIMSE);
	diana_session_free(s);
	cr_expect_eq(diana_session_open(&s, "dicom://PACS@127.0.0.1:104?aet=ME&retrieve=move", NULL), DIANA_EINVAL,
	             "C-MOVE needs a local port");
	cr_expect_eq(diana_session_open(&s, "dicom://PACS:pw@127.0.0.1:104", NULL), DIANA_EINVAL);
	cr_expect_eq(diana_session_open(&s, "orthanc+http://h:1?modality=", NULL), DIANA_EINVAL);
	cr_expect_eq(diana_session_open(&s, "", NULL), DIANA_EINVAL);
	cr_expect_eq(diana_session_open(NULL, "x", NULL), DIANA_EINVAL);
	{
		diana_session_options o = DIANA_SESSION_OPTIONS_INIT;
		o.version = 99;
		cr_expect_eq(diana_session_open(&s, "orthanc+http://h:1", &o), DIANA_EUNSUPPORTED);
		cr_expect_eq(diana_session_options_init(&o, 99), DIANA_EUNSUPPORTED);
	}
}

Test(session_unit, keys_parse_and_dataset)
{
	const char *in[] = { "PatientName=DOE^J*", "0020,000D=1.2.3\\1.2.4", "StudyDate=20240101-20240131",
		                 "(0008,0050)", "NumberOfStudyRelatedInstances", "PatientName=SMITH" };
	diana__keys k;
	diana_dataset *ds = NULL;
	char *v = NULL;
	const diana__key *key;

	cr_assert_eq(diana__keys_parse(in, 6, &k), 0, "%s", diana_error_message());
	cr_expect_eq(k.n, 5, "a repeated name keeps the last value");
	key = diana__keys_get(&k, 0x00100010);
	cr_assert_not_null(key);
	cr_expect_str_eq(key->value, "SMITH");
	cr_expect_str_eq(key->vr, "PN");
	key = diana__keys_get(&k, 0x00080050);
	cr_assert_not_null(key);
	cr_expect_str_eq(key->value, "");
	cr_expect_str_eq(key->keyword, "AccessionNumber");
	cr_assert_eq(diana__keys_to_dataset(&k, &ds), 0, "%s", diana_error_message());
	cr_assert_eq(diana_dataset_get(ds, "StudyInstanceUID", &v), 0);
	cr_expect_str_eq(v, "1.2.3\\1.2.4");
	diana_free(v);
	cr_assert_eq(diana_dataset_get(ds, "StudyDate", &v), 0);
	cr_expect_str_eq(v, "20240101-20240131");
	diana_free(v);
	cr_assert_eq(diana_dataset_get(ds, "AccessionNumber", &v), 0);
	cr_expect_str_eq(v, "", "a return key is present and empty");
	diana_free(v);
	diana_dataset_free(ds);
	diana__keys_dispose(&k);

	{
		const char *bad1[] = { "PatientNam=X" };
		const char *bad2[] = { "0002,0010=1.2" };
		const char *bad3[] = { "NumberOfStudyRelatedInstances=many" };
		cr_expect_eq(diana__keys_parse(bad1, 1, &k), DIANA_EINVAL);
		cr_expect(strstr(diana_error_message(), "PatientNam") != NULL);
		cr_expect_eq(diana__keys_parse(bad2, 1, &k), DIANA_EINVAL, "no file meta keys");
		cr_assert_eq(diana__keys_parse(bad3, 1, &k), 0);
		cr_expect_eq(diana__keys_to_dataset(&k, &ds), DIANA_EINVAL, "IS must be a number");
		cr_expect(strstr(diana_error_message(), "many") == NULL, "the value is not echoed");
		diana__keys_dispose(&k);
	}
}

Test(session_unit, answers_from_orthanc_json)
{
	cJSON *j = cJSON_Parse("{\"0010,0010\":\"M\xc3\x9cLLER^J\",\"0020,000d\":\"1.2.3\","
	                       "\"00201208\":\"20\",\"StudyDescription\":\"CT\",\"Unknown\":\"x\","
	                       "\"0008,1110\":[{\"0008,1155\":\"1.2.9\"}],"
	                       "\"7fe0,0010\":\"ignored\",\"ID\":\"orthanc-id\"}");
	diana_dataset *ds = NULL;
	char *v = NULL;

	cr_assert_not_null(j);
	cr_assert_eq(diana__answer_from_tag_strings(j, &ds), 0, "%s", diana_error_message());
	cr_assert_eq(diana_dataset_get(ds, "PatientName", &v), 0);
	cr_expect_str_eq(v, "M\xc3\x9cLLER^J");
	diana_free(v);
	cr_assert_eq(diana_dataset_get(ds, "NumberOfStudyRelatedInstances", &v), 0);
	cr_expect_str_eq(v, "20");
	diana_free(v);
	cr_assert_eq(diana_dataset_get(ds, "StudyDescription", &v), 0);
	diana_free(v);
	cr_assert_eq(diana_dataset_get(ds, "ReferencedStudySequence[0].ReferencedSOPInstanceUID", &v), 0);
	cr_expect_str_eq(v, "1.2.9");
	diana_free(v);
	cr_expect_eq(diana_dataset_get(ds, "PixelData", &v), DIANA_ENOTFOUND);
	diana_dataset_free(ds);
	cJSON_Delete(j);
}

static int m(const char *name, const char *kv, const char *v)
{
	diana__keys k;
	char buf[256];
	const char *in[1] = { buf };
	int r;
	snprintf(buf, sizeof(buf), "%s=%s", name, kv);
	cr_assert_eq(diana__keys_parse(in, 1, &k), 0);
	r = diana__key_matches(&k.v[0], v);
	diana__keys_dispose(&k);
	return r;
}

Test(session_unit, matching)
{
	cr_expect(m("PatientName", "", "ANY^ONE"), "universal");
	cr_expect(m("PatientName", "*", "ANY^ONE"));
	cr_expect(m("PatientName", "DOE*", "DOE^JOHN"));
	cr_expect(m("PatientName", "doe^john", "DOE^JOHN^^"), "PN: case and trailing empty components");
	cr_expect(!m("PatientName", "DOE", "DOE^JOHN"), "no implicit prefix match");
	cr_expect(m("PatientName", "D?E^*", "DOE^JOHN"));
	cr_expect(m("AccessionNumber", "A1", "A1"));
	cr_expect(!m("AccessionNumber", "a1", "A1"), "case-sensitive outside PN");
	cr_expect(m("StudyDate", "20240101-20240131", "20240115"));
	cr_expect(!m("StudyDate", "20240101-20240131", "20240201"));
	cr_expect(m("StudyDate", "-20240131", "19990101"), "open start");
	cr_expect(m("StudyDate", "20240101-", "20991231"), "open end");
	cr_expect(m("StudyInstanceUID", "1.2.3\\1.2.4", "1.2.4"), "UID list");
	cr_expect(!m("StudyInstanceUID", "1.2.3\\1.2.4", "1.2.5"));
	cr_expect(m("ModalitiesInStudy", "CT", "MR\\CT"), "any of the element's values");
	cr_expect(!m("AccessionNumber", "A1", NULL), "absent element");
	cr_expect(m("StudyDescription", "*HEAD*", "CT HEAD W/O"));
	cr_expect(!m("StudyDate", "-20240301", ""), "an empty value is not in a range");
	cr_expect(!m("PatientName", "A*", ""));
	cr_expect(m("PatientName", "", ""), "universal matching matches empty values");
}
