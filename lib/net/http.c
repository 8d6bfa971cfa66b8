/* placeholder: replaced by the HTTP implementation */
#include <curl/curl.h>
#include "net.h"
int diana__net_global_init(void) { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : diana__error_set(DIANA_ERROR, "curl init failed"); }
void diana__net_global_shutdown(void) { curl_global_cleanup(); }
int diana__net_has_tls(void) { return (curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_SSL) != 0; }
