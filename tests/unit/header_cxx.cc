// The public headers compile as C++ and declare C linkage.
#include <diana/diana.h>

#include <type_traits>

static_assert(std::is_same<decltype(&diana_init), int (*)() noexcept>::value,
              "diana_init is a noexcept C function");

int main()
{
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	(void)o;
	return DIANA_OK;
}
