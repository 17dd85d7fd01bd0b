//! Columns coded as dense `u32` category codes, the representation every computation works on.
//!
//! A [`Dictionary`] gives each distinct value a code `0..len` in order of first appearance.
//! Missing values (Arrow nulls, empty CSV cells) get the code [`MISSING`]. Two tables coded with
//! the same dictionaries (see [`CodedTable::with_dictionaries`]) can be compared code by code,
//! which is what population and trajectory risk rely on.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};

use crate::error::{Result, RiskError};
use crate::hash::FastMap;

/// The code of a missing value in every column.
pub const MISSING: u32 = u32::MAX;

/// Distinct values of one column and their codes.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    labels: Vec<String>,
    index: FastMap<String, u32>,
    // Integer columns are coded through their decimal label; this side index avoids formatting
    // every value of a million-row column.
    ints: FastMap<i64, u32>,
}

impl Dictionary {
    pub fn new() -> Self {
        Self::default()
    }

    /// The code of `label`, adding it when new.
    pub fn code(&mut self, label: &str) -> u32 {
        if let Some(&code) = self.index.get(label) {
            return code;
        }
        let code = self.labels.len() as u32;
        self.labels.push(label.to_owned());
        self.index.insert(label.to_owned(), code);
        code
    }

    fn code_int(&mut self, value: i64) -> u32 {
        if let Some(&code) = self.ints.get(&value) {
            return code;
        }
        let code = self.code(&value.to_string());
        self.ints.insert(value, code);
        code
    }

    /// The code of `label` if it has one.
    pub fn lookup(&self, label: &str) -> Option<u32> {
        self.index.get(label).copied()
    }

    /// The label of `code`; `None` for [`MISSING`] or an unknown code.
    pub fn label(&self, code: u32) -> Option<&str> {
        self.labels.get(code as usize).map(String::as_str)
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// One coded column: a name, a code per row and the dictionary that gives the codes meaning.
#[derive(Debug, Clone)]
pub struct CodedColumn {
    pub name: String,
    pub codes: Vec<u32>,
    pub dictionary: Dictionary,
}

impl CodedColumn {
    /// Codes optional string values (`None` is missing) with a fresh dictionary.
    pub fn from_values<'a>(
        name: impl Into<String>,
        values: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Self {
        Self::from_values_with(name, values, Dictionary::new())
    }

    /// Codes optional string values, continuing `dictionary` so codes stay comparable with
    /// another table coded with it.
    pub fn from_values_with<'a>(
        name: impl Into<String>,
        values: impl IntoIterator<Item = Option<&'a str>>,
        mut dictionary: Dictionary,
    ) -> Self {
        let codes = values
            .into_iter()
            .map(|v| v.map_or(MISSING, |s| dictionary.code(s)))
            .collect();
        Self {
            name: name.into(),
            codes,
            dictionary,
        }
    }

    /// An empty column that will be filled by [`CodedColumn::append_array`].
    pub fn empty(name: impl Into<String>, dictionary: Dictionary) -> Self {
        Self {
            name: name.into(),
            codes: Vec::new(),
            dictionary,
        }
    }

    /// Appends the values of an Arrow array (nulls become [`MISSING`]).
    pub fn append_array(&mut self, array: &dyn Array) -> Result<()> {
        let type_error = |_: arrow::error::ArrowError| RiskError::UnsupportedType {
            column: self.name.clone(),
            data_type: array.data_type().to_string(),
        };
        let dict = &mut self.dictionary;
        let codes = &mut self.codes;
        codes.reserve(array.len());
        match array.data_type() {
            DataType::Dictionary(_, _) => {
                let any = array.as_any_dictionary();
                let values = any.values();
                if values.is_empty() {
                    codes.extend(std::iter::repeat_n(MISSING, array.len()));
                    return Ok(());
                }
                // Code the (small) dictionary once, then translate keys.
                let mut scratch = CodedColumn::empty(self.name.clone(), std::mem::take(dict));
                scratch.append_array(values.as_ref())?;
                *dict = scratch.dictionary;
                let value_codes = scratch.codes;
                let keys = any.normalized_keys();
                let nulls = array.logical_nulls();
                for (i, key) in keys.into_iter().enumerate() {
                    let valid = nulls.as_ref().is_none_or(|n| n.is_valid(i));
                    codes.push(if valid { value_codes[key] } else { MISSING });
                }
            }
            DataType::Utf8 => push_strings(codes, dict, array.as_string::<i32>().iter()),
            DataType::LargeUtf8 => push_strings(codes, dict, array.as_string::<i64>().iter()),
            DataType::Utf8View => push_strings(codes, dict, array.as_string_view().iter()),
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => {
                let ints = cast(array, &DataType::Int64).map_err(type_error)?;
                for v in ints.as_primitive::<Int64Type>().iter() {
                    codes.push(v.map_or(MISSING, |v| dict.code_int(v)));
                }
            }
            DataType::Null => codes.extend(std::iter::repeat_n(MISSING, array.len())),
            other if other.is_nested() => {
                return Err(RiskError::UnsupportedType {
                    column: self.name.clone(),
                    data_type: other.to_string(),
                });
            }
            _ => {
                let strings: ArrayRef = cast(array, &DataType::Utf8).map_err(type_error)?;
                push_strings(codes, dict, strings.as_string::<i32>().iter());
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// The label of row `row`; `None` when missing.
    pub fn label(&self, row: usize) -> Option<&str> {
        self.dictionary.label(self.codes[row])
    }

    /// The column as an Arrow string array (missing values as nulls), for writing it out.
    pub fn to_arrow(&self) -> ArrayRef {
        Arc::new(
            self.codes
                .iter()
                .map(|&c| self.dictionary.label(c))
                .collect::<StringArray>(),
        )
    }

    /// Number of distinct codes the column can hold, excluding [`MISSING`].
    pub fn cardinality(&self) -> usize {
        self.dictionary.len()
    }

    pub fn has_missing(&self) -> bool {
        self.codes.contains(&MISSING)
    }
}

fn push_strings<'a>(
    codes: &mut Vec<u32>,
    dict: &mut Dictionary,
    values: impl Iterator<Item = Option<&'a str>>,
) {
    codes.extend(values.map(|v| v.map_or(MISSING, |s| dict.code(s))));
}

/// Coded columns of equal length.
#[derive(Debug, Clone, Default)]
pub struct CodedTable {
    columns: Vec<CodedColumn>,
}

impl CodedTable {
    /// Builds a table; every column must have the same number of rows.
    pub fn new(columns: Vec<CodedColumn>) -> Result<Self> {
        if let Some(first) = columns.first() {
            for column in &columns {
                if column.len() != first.len() {
                    return Err(RiskError::LengthMismatch {
                        column: column.name.clone(),
                        got: column.len(),
                        expected: first.len(),
                    });
                }
            }
        }
        Ok(Self { columns })
    }

    /// Codes string rows: `names` are the column names, each row holds one optional value per
    /// column. Handy for tests and for callers that hold records rather than Arrow arrays.
    pub fn from_rows(names: &[&str], rows: &[Vec<Option<&str>>]) -> Result<Self> {
        let columns = names
            .iter()
            .enumerate()
            .map(|(i, name)| CodedColumn::from_values(*name, rows.iter().map(|row| row[i])))
            .collect();
        Self::new(columns)
    }

    /// The dictionaries of this table, to code another table comparably.
    pub fn dictionaries(&self) -> Vec<Dictionary> {
        self.columns.iter().map(|c| c.dictionary.clone()).collect()
    }

    /// Replaces the dictionaries of an empty table layout: used to code a second table with the
    /// first one's codes. Returns empty columns with the given names and dictionaries.
    pub fn with_dictionaries(names: &[&str], dictionaries: Vec<Dictionary>) -> Self {
        let columns = names
            .iter()
            .zip(dictionaries)
            .map(|(n, d)| CodedColumn::empty(*n, d))
            .collect();
        Self { columns }
    }

    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, CodedColumn::len)
    }

    pub fn columns(&self) -> &[CodedColumn] {
        &self.columns
    }

    pub fn columns_mut(&mut self) -> &mut [CodedColumn] {
        &mut self.columns
    }

    pub fn into_columns(self) -> Vec<CodedColumn> {
        self.columns
    }

    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Index of the column named `name`.
    pub fn index_of(&self, name: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| RiskError::UnknownColumn {
                column: name.to_owned(),
                available: self.names().join(", "),
            })
    }

    pub fn column(&self, name: &str) -> Result<&CodedColumn> {
        Ok(&self.columns[self.index_of(name)?])
    }

    /// The code slices of the named columns, in the order asked.
    pub fn code_slices(&self, names: &[&str]) -> Result<Vec<&[u32]>> {
        names
            .iter()
            .map(|n| Ok(self.column(n)?.codes.as_slice()))
            .collect()
    }
}
