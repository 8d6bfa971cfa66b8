/* placeholder: replaced by the dataset implementation */
#include "../core/core.h"
#include "dicom.h"
