/*
 * libdiana - name lists for sham patient names (written for libdiana:
 * common, neutral given and family names from many countries, ASCII only
 * so that they are valid in every DICOM character set).
 * SPDX-License-Identifier: MIT
 */
#include "mint.h"

const char *const diana__family_names[] = {
	"Abbott", "Acosta", "Adams", "Adler", "Aguilar", "Ahmed", "Alder", "Alvarez", "Anders",
	"Andersen", "Arnold", "Ash", "Atkins", "Bailey", "Baker", "Banks", "Barnes", "Barrett",
	"Bauer", "Baxter", "Beck", "Bell", "Bennett", "Berg", "Berger", "Bishop", "Black", "Blake",
	"Bloom", "Bond", "Booth", "Bowen", "Boyd", "Bradley", "Brandt", "Brennan", "Brooks", "Brown",
	"Bryant", "Burke", "Burns", "Butler", "Byrne", "Cameron", "Campbell", "Carlson", "Carter",
	"Castillo", "Chambers", "Chandler", "Chen", "Clark", "Cole", "Collins", "Conrad", "Cooper",
	"Costa", "Cross", "Cruz", "Dahl", "Dalton", "Daniels", "Davies", "Dawson", "Dean", "Decker",
	"Delgado", "Dixon", "Doyle", "Duncan", "Dunn", "Eaton", "Eckert", "Ellis", "Engel", "Evans",
	"Farmer", "Fischer", "Fleming", "Flores", "Ford", "Foster", "Fox", "Franke", "Fraser",
	"Frost", "Fuller", "Garcia", "Gardner", "Garner", "Gibson", "Gill", "Graham", "Grant", "Gray",
	"Green", "Gross", "Hahn", "Hale", "Hall", "Hansen", "Harper", "Hart", "Hayes", "Henry",
	"Hill", "Hoffman", "Holm", "Hope", "Horn", "Howard", "Hughes", "Hunt", "Ingram", "Jansen",
	"Jensen", "Jones", "Jordan", "Kaiser", "Keller", "Kelly", "Kent", "Klein", "Knight", "Koch",
	"Kramer", "Krause", "Lambert", "Lang", "Larsen", "Lawson", "Lee", "Lehmann", "Lewis",
	"Lindberg", "Long", "Lopez", "Lowe", "Lund", "Mann", "Marsh", "Martin", "Mason", "Meyer",
	"Miller", "Mills", "Moore", "Morgan", "Morris", "Moss", "Murphy", "Nash", "Neumann",
	"Nielsen", "Noble", "North", "Novak", "Olsen", "Ortiz", "Owen", "Palmer", "Park", "Parker",
	"Payne", "Pearson", "Perry", "Peters", "Porter", "Powell", "Price", "Quinn", "Ramos", "Reed",
	"Reyes", "Rice", "Richter", "Rivera", "Roberts", "Rogers", "Romero", "Ross", "Russo", "Ryan",
	"Sanders", "Santos", "Schmidt", "Scott", "Shaw", "Silva", "Simon", "Sinclair", "Snow",
	"Sommer", "Stone", "Sullivan", "Summers", "Sutton", "Tanaka", "Taylor", "Thomas", "Todd",
	"Torres", "Tucker", "Turner", "Vogel", "Wagner", "Walker", "Walsh", "Ward", "Warren",
	"Watson", "Weber", "West", "Wheeler", "White", "Wolf", "Wood", "Wright", "Young", "Zimmer",
};
const size_t diana__n_family_names = sizeof diana__family_names / sizeof diana__family_names[0];

const char *const diana__given_names[] = {
	"Aaron", "Ada", "Adam", "Adrian", "Aiden", "Alan", "Alba", "Alex", "Alice", "Alma", "Amara",
	"Amelia", "Ana", "Andrea", "Andrew", "Anna", "Anton", "Ari", "Arthur", "Ava", "Ben", "Bianca",
	"Blair", "Bruno", "Caleb", "Camila", "Carl", "Carmen", "Cecile", "Chloe", "Chris", "Clara",
	"Colin", "Cora", "Dana", "Daniel", "Daria", "David", "Dean", "Diana", "Diego", "Dora", "Eli",
	"Elena", "Eliot", "Ella", "Emil", "Emma", "Eric", "Erin", "Eva", "Evan", "Felix", "Fiona",
	"Frank", "Freya", "Gabriel", "Gemma", "George", "Gina", "Grace", "Greta", "Hana", "Hannah",
	"Harold", "Hector", "Helen", "Henry", "Ian", "Ida", "Ines", "Ingrid", "Iris", "Isaac", "Ivan",
	"Ivy", "Jack", "Jade", "James", "Jana", "Jasper", "Jean", "Jesse", "Joan", "Joel", "John",
	"Jonas", "Josef", "Julia", "Julian", "June", "Kai", "Karen", "Karl", "Kate", "Kevin", "Kim",
	"Lara", "Laura", "Leah", "Leo", "Leon", "Lena", "Liam", "Lila", "Lina", "Linus", "Lisa",
	"Logan", "Lois", "Lucas", "Lucy", "Luis", "Luka", "Lydia", "Mara", "Marco", "Maria", "Mark",
	"Marta", "Mateo", "Max", "Maya", "Mia", "Milan", "Mila", "Miles", "Mira", "Nadia", "Nina",
	"Noah", "Nora", "Oliver", "Olga", "Omar", "Oscar", "Otto", "Paul", "Paula", "Pedro", "Peter",
	"Petra", "Philip", "Quinn", "Rafael", "Rita", "Robin", "Rosa", "Ruby", "Ruth", "Ryan", "Sam",
	"Sara", "Sean", "Selma", "Simon", "Sofia", "Stella", "Sven", "Tara", "Theo", "Thomas", "Tina",
	"Tobias", "Tom", "Uma", "Una", "Vera", "Victor", "Viola", "Walter", "Wanda", "Will", "Xavier",
	"Yara", "Yuri", "Zara", "Zoe", "Abel", "Agnes", "Boris", "Celia", "Dario", "Edith", "Flora",
	"Gustav", "Hugo", "Ilse", "Jonah", "Kira", "Lorenz", "Malik", "Nils", "Orla", "Pia", "Remy",
	"Sina", "Timo", "Vito", "Wren", "Ayla", "Bela", "Cyril", "Elsa", "Finn", "Gia", "Hedda",
	"Ilan",
};
const size_t diana__n_given_names = sizeof diana__given_names / sizeof diana__given_names[0];
