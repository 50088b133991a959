/*-------------------------------------------------------------------------
 *
 * shapes.h
 *		The shape registry, sfexport.shapes (shapes.c; model layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_SHAPES_H
#define SF_SHAPES_H

/* A shape's columns and their types as recorded in sfexport.shapes. */
typedef struct SfShapeLayout
{
	int			ncols;
	char	  **names;
	Oid		   *oids;			/* base type OIDs */
	int32	   *typmods;
	int16	   *lens;
	bool	   *byvals;
	char	   *aligns;
} SfShapeLayout;

/* The columns of a new shape, as arrays of Datums (sf_shape_register). */
typedef struct SfShapeColumns
{
	int			ncols;
	Datum	   *names;			/* text */
	Datum	   *types;			/* text: format_type */
	Datum	   *oids;
	Datum	   *mods;
	Datum	   *lens;
	Datum	   *byvals;
	Datum	   *aligns;
} SfShapeColumns;
typedef void (*SfShapeColumnsFn) (void *arg, SfShapeColumns *cols);

extern void sf_shapes_init(void);
extern void sf_shape_register(Oid ftrelid, int64 shape, SfShapeColumnsFn fill, void *arg);
extern SfShapeLayout *sf_shape_layout(Oid relid, int64 shape);
extern void sf_shape_columns(Oid relid, int64 shape, Datum *columns, Datum *types);

#endif							/* SF_SHAPES_H */
