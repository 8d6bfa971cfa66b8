/*
 * libdiana - public entry points of the dose module: options, reading a
 * report from a dataset, a file or memory, optional de-identification
 * through the public profile API.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "dose_priv.h"

DIANA_API int diana_dose_options_init(diana_dose_options *opts, uint32_t version)
{
	int rc;
	if (!opts)
		return diana__error_set(DIANA_EINVAL, "options are NULL");
	if ((rc = diana__check_version(version, DIANA_DOSE_OPTIONS_VERSION, "diana_dose_options")) < 0)
		return rc;
	memset(opts, 0, sizeof(*opts));
	opts->version = version;
	return 0;
}

static int convert_dataset(const diana_dataset *ds, uint32_t flags, char **out)
{
	char *json = NULL;
	cJSON *root;
	int rc = diana_dataset_to_json(ds, DIANA_JSON_NO_BULK, &json);
	if (rc < 0)
		return rc;
	root = cJSON_Parse(json);
	diana_free(json);
	if (!root)
		return diana__error_set(DIANA_ENOMEM, "cannot parse the dataset's DICOM JSON");
	rc = diana__dose_convert(root, flags, out);
	cJSON_Delete(root);
	return rc;
}

/* de-identify a copy (Part 10 round trip) and convert the copy */
static int convert_pseudonymized(const diana_dataset *ds, diana_profile *profile, uint32_t flags,
                                 char **out)
{
	uint8_t *bytes = NULL, *anon = NULL;
	size_t len = 0, anon_len = 0;
	diana_dataset *copy = NULL;
	diana_dataset_options dopts = DIANA_DATASET_OPTIONS_INIT;
	char *probe = NULL;
	cJSON *before, *after;
	int rc, n_before, n_after;

	/* refuse what is not a dose report before touching the key file */
	rc = convert_dataset(ds, 0, &probe);
	if (rc < 0)
		return rc;
	before = cJSON_Parse(probe);
	diana_free(probe);
	n_before = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(before, "events"));
	cJSON_Delete(before);
	rc = diana_dataset_save_memory(ds, &bytes, &len);
	if (rc < 0)
		return rc;
	rc = diana_anonymize_memory(profile, bytes, len, &anon, &anon_len, NULL);
	diana_free(bytes);
	if (rc < 0)
		return rc;
	dopts.flags = DIANA_OPEN_LENIENT;
	rc = diana_dataset_open_memory(&copy, anon, anon_len, &dopts);
	diana_free(anon);
	if (rc < 0)
		return rc;
	rc = convert_dataset(copy, flags, out);
	diana_dataset_free(copy);
	if (rc == 0) {
		after = cJSON_Parse(*out);
		n_after = after ? cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(after, "events")) : -1;
		cJSON_Delete(after);
		if (n_after != n_before) {
			diana_free(*out);
			*out = NULL;
			rc = DIANA_EUNSUPPORTED;
		}
	}
	/* without Clean Structured Content the basic profile dummies the
	 * concept names of the content tree: the dose data is gone */
	if (rc == DIANA_EUNSUPPORTED)
		return diana__error_set(DIANA_EINVAL,
		                        "the profile replaces the dose report's concept names: "
		                        "enable clean-structured-content");
	return rc;
}

static int read_opts(const diana_dose_options *opts, uint32_t *flags, diana_profile **profile)
{
	int rc;
	*flags = 0;
	*profile = NULL;
	if (!opts)
		return 0;
	if ((rc = diana__check_version(opts->version, DIANA_DOSE_OPTIONS_VERSION, "diana_dose_options")) < 0)
		return rc;
	if (opts->flags & ~(uint32_t)DIANA_DOSE_PRETTY)
		return diana__error_set(DIANA_EINVAL, "unknown dose flags 0x%x", (unsigned)opts->flags);
	*flags = opts->flags;
	*profile = opts->profile;
	return 0;
}

DIANA_API int diana_dose_from_dataset(char **out, const diana_dataset *ds, const diana_dose_options *opts)
{
	uint32_t flags;
	diana_profile *profile;
	int rc;

	if (!out)
		return diana__error_set(DIANA_EINVAL, "out is NULL");
	*out = NULL;
	if (!ds)
		return diana__error_set(DIANA_EINVAL, "dataset is NULL");
	if ((rc = read_opts(opts, &flags, &profile)) < 0)
		return rc;
	if (profile)
		return convert_pseudonymized(ds, profile, flags, out);
	return convert_dataset(ds, flags, out);
}

DIANA_API int diana_dose_from_file(char **out, const char *path, const diana_dose_options *opts)
{
	diana_dataset_options dopts = DIANA_DATASET_OPTIONS_INIT;
	diana_dataset *ds = NULL;
	uint32_t flags;
	diana_profile *profile;
	int rc;

	if (!out)
		return diana__error_set(DIANA_EINVAL, "out is NULL");
	*out = NULL;
	if (!path)
		return diana__error_set(DIANA_EINVAL, "path is NULL");
	if ((rc = read_opts(opts, &flags, &profile)) < 0)
		return rc;
	dopts.flags = DIANA_OPEN_LENIENT;
	if ((rc = diana_dataset_open(&ds, path, &dopts)) < 0)
		return rc;
	rc = diana_dose_from_dataset(out, ds, opts);
	diana_dataset_free(ds);
	return rc;
}

DIANA_API int diana_dose_from_memory(char **out, const uint8_t *data, size_t len,
                                     const diana_dose_options *opts)
{
	diana_dataset_options dopts = DIANA_DATASET_OPTIONS_INIT;
	diana_dataset *ds = NULL;
	uint32_t flags;
	diana_profile *profile;
	int rc;

	if (!out)
		return diana__error_set(DIANA_EINVAL, "out is NULL");
	*out = NULL;
	if (!data && len)
		return diana__error_set(DIANA_EINVAL, "data is NULL");
	if ((rc = read_opts(opts, &flags, &profile)) < 0)
		return rc;
	dopts.flags = DIANA_OPEN_LENIENT;
	if ((rc = diana_dataset_open_memory(&ds, data, len, &dopts)) < 0)
		return rc;
	rc = diana_dose_from_dataset(out, ds, opts);
	diana_dataset_free(ds);
	return rc;
}
