/**
 * What both backends' daemon renders share: keep the last render; render a model that mostly repeats
 * it from the parts kept, one that does not (the first, or one changing many Mappings) whole, unless
 * told that renders follow one another (a daemon), then from parts too; and render each NatMapping
 * object once. A backend supplies the whole render, a Mapping's share and the assembly from parts.
 */
import type {NatMapping, NatModel} from '../plan/model.js'
import {mappingDelta, type ListDelta} from './model-delta.js'

/** Past this many changed Mappings, rendering them all costs about as much as the bookkeeping. */
const MAX_CHANGED_MAPPINGS = 256

/** How much of the last render a render reused: a test's view of the work done. */
export interface RenderStats {
  /** Rendered whole by the full render, keeping no parts: the first render, and one that changes many Mappings. */
  whole: boolean
  /** Mappings rendered afresh (not found among the shares kept). */
  mappingsRendered: number
  /** Addresses whose parts were assembled again. */
  addressesAssembled: number
}

/** A render assembled from parts: its model and state, and the parts it keeps. */
export interface RenderedFromParts<State> {
  model: NatModel
  state: State
  parts: unknown
}

/** The last render when it rendered the model whole, keeping no parts. */
interface Whole<State> {
  model: NatModel
  state: State
}

/**
 * Renders models one after the other, reusing what the models share with the last one. Models are
 * taken as immutable, as the planner makes them: an object rendered before is not looked at again.
 */
export abstract class PartsRenderer<State, Share, Rendered extends RenderedFromParts<State>> {
  /** What the last render did. */
  stats: RenderStats = {whole: false, mappingsRendered: 0, addressesAssembled: 0}
  private readonly shares = new WeakMap<NatMapping, Share>()
  private last: Rendered | Whole<State> | undefined

  /**
   * With `partsFromFirst`, every render keeps parts, the first and those changing many Mappings
   * included: the render after them, a daemon's next change, then costs what any other does.
   */
  constructor(private readonly options: {partsFromFirst?: boolean} = {}) {}

  /** The state `model` asks for, equal to the whole render's; throws what the whole render throws. */
  render(model: NatModel): State {
    const last = this.last
    this.last = undefined
    this.stats = {whole: false, mappingsRendered: 0, addressesAssembled: 0}
    try {
      const delta = last && mappingDelta(last.model.mappings, model.mappings, MAX_CHANGED_MAPPINGS)
      if (!delta && !this.options.partsFromFirst) {
        // Without a model that this one mostly repeats, parts would cost more than they save: a
        // one-shot sync renders once, and the next render builds them if it repeats this model.
        const state = this.renderWhole(model)
        this.last = {model, state}
        this.stats.whole = true
        return state
      }
      this.last = this.assemble(model, last && delta && 'parts' in last ? {last, delta} : undefined)
      return this.last.state
    } catch (error) {
      // The parts kept may be what is wrong: again without them, which fails, if it does, as the full render does.
      if (last) return this.render(model)
      throw error
    }
  }

  /** The state the last render gave; none before the first, nor while or after one fails. */
  lastState(): State | undefined {
    return this.last?.state
  }

  /** The whole render, keeping no parts. */
  protected abstract renderWhole(model: NatModel): State

  /** What one Mapping contributes, rendered once per NatMapping object. */
  protected abstract renderShare(mapping: NatMapping): Share

  /** Assembles `model` from parts: the last render's patched where `from` has them, else all (kept Mappings' shares reused). */
  protected abstract assemble(model: NatModel, from: {last: Rendered; delta: ListDelta<NatMapping>} | undefined): Rendered

  /** The share of `mapping`, rendered now unless kept. */
  protected share(mapping: NatMapping): Share {
    let share = this.shares.get(mapping)
    if (share === undefined) {
      this.shares.set(mapping, (share = this.renderShare(mapping)))
      this.stats.mappingsRendered++
    }
    return share
  }

  /** The share kept of a Mapping the last render had. */
  protected kept(mapping: NatMapping): Share {
    return this.shares.get(mapping)!
  }
}
