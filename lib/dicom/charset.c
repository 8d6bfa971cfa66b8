/* placeholder: replaced by the charset implementation */
#include "../core/core.h"
#include "dicom.h"
#include <string.h>
int diana__charset_to_utf8(const char *charset, const char *bytes, size_t len, int is_pn, char **out)
{
	(void)charset; (void)is_pn;
	*out = diana__strndup(bytes, len);
	return *out ? 0 : DIANA_ENOMEM;
}
int diana__charset_supported(const char *charset) { (void)charset; return 1; }
