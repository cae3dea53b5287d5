"""`cnnjax report`: finished runs beside the papers' numbers (`compare`),
from the published rows with their citations (`papers`)."""
